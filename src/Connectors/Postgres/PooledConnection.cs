using System.Data;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// A pooled connection lent for one piece of work, and given back as a new one starts: nothing one agent's statement did to
/// the session reaches the next. Npgsql's own reset on return is off (<see cref="FixedStatements.Configure"/>): it parsed and
/// ran seven statements at the head of the next call's round trip, about a sixth of PostgreSQL's work on a point query.
/// <list type="bullet">
/// <item>A read ends its own batch by closing its cursor, <see cref="FixedStatements.ReleaseLocks"/> and ROLLBACK, and says
/// so (<see cref="MarkReset"/>). A rolled-back transaction takes its settings, role, cursors, LISTENs and temporary tables
/// with it, and a read-only one cannot touch a sequence, so a session advisory lock (which a function, or the planner folding
/// one, can take) is all it leaves.</item>
/// <item>A write ends its COMMIT batch with the full <see cref="FixedStatements.Reset"/>; a failed call rolls back and resets
/// (<see cref="RollBackAsync"/>).</item>
/// <item>The gateway's catalog reads, each batch a transaction of its own, change nothing (<see cref="MarkCatalogReadsDone"/>).</item>
/// <item>Anything else gets the full reset when it is disposed, and goes back to the pool, whose return rolls back a
/// transaction left open: a reset runs inside one without complaint, so it cannot tell, and the rollback undoes what the
/// reset did inside it along with everything else the transaction did.</item>
/// </list>
/// A connection whose reset fails is never lent again (<see cref="Discard"/>). One its work gave back reset and healthy is kept
/// for the next call when none is (<see cref="HotConnection"/>).
/// </summary>
public sealed class PooledConnection : IAsyncDisposable
{
    /// <summary>The longest a reset may take when a connection is handed back, so a hung server cannot hold its caller.</summary>
    private static readonly TimeSpan ResetDeadline = TimeSpan.FromSeconds(5);

    private readonly NpgsqlDataSource _source;

    private readonly HotConnection? _hot;
    private readonly int _generation;
    private readonly long _since;

    // Reset, or discarded: either way nothing is left to do when it is disposed.
    private bool _settled;

    // Not to be lent again (and its pool drained).
    private bool _discarded;

    /// <param name="generation">The <paramref name="hot"/> generation the connection was opened in.</param>
    /// <param name="since">When it was taken from the pool (a <see cref="System.Diagnostics.Stopwatch"/> timestamp).</param>
    internal PooledConnection(NpgsqlConnection connection, NpgsqlDataSource source, HotConnection? hot = null, int generation = 0, long since = 0)
    {
        Connection = connection;
        _source = source;
        _hot = hot;
        _generation = generation;
        _since = since;
    }

    public NpgsqlConnection Connection { get; }

    /// <summary>The work's last batch has completed, ending with the reset it needed.</summary>
    internal void MarkReset() => _settled = true;

    /// <summary>
    /// The work ran only the gateway's own reads of the system catalogs, without BEGIN: each batch was a transaction of its
    /// own, now ended, and nothing in the session changed. Nothing needs resetting, and the connection may be kept (the
    /// catalog poll takes the kept connection several times a second).
    /// </summary>
    internal void MarkCatalogReadsDone() => _settled = true;

    /// <summary>After a failure: rolls back whatever transaction is open and resets, never throwing.</summary>
    internal ValueTask RollBackAsync() => SettleAsync(rollBackFirst: true);

    /// <summary>
    /// The connection is not known to be clean, so it must never be lent again: the pool is cleared, which closes this
    /// connection (and the others out now) when it comes back, and the idle ones at once. Npgsql has no way to drop one
    /// connection alone (ending its server process would clear the pool too). Rare by design: an agent's statement cannot
    /// reach the settings that could make a reset fail (set_config is refused), so this is the defence behind that.
    /// </summary>
    internal void Discard()
    {
        _settled = true;
        _discarded = true;
        // The pool first, then the kept connection's generation, as PostgresTargets.Drain does.
        _source.Clear();
        _hot?.Drop();
    }

    public async ValueTask DisposeAsync()
    {
        // Settled by its work (its last batch ended in the reset, or a failure rolled back and reset), so no transaction is open.
        var settledByWork = _settled;
        try
        {
            if (!_settled)
            {
                await SettleAsync(rollBackFirst: false).ConfigureAwait(false);
            }
        }
        finally
        {
            // Reset by its work and healthy: kept for the next call when nothing is kept yet and it is not due back in the pool;
            // otherwise back to the pool.
            if (!settledByWork || _discarded || Connection.FullState != ConnectionState.Open || _hot?.TryKeep(Connection, _generation, _since) != true)
            {
                await Connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async ValueTask SettleAsync(bool rollBackFirst)
    {
        var state = Connection.FullState;
        if (!state.HasFlag(ConnectionState.Open))
        {
            return; // Closed or broken: the pool discards a broken connection, so there is nothing to reset.
        }

        if (state != ConnectionState.Open)
        {
            Discard(); // Still busy with a reader: what it did to the session is unknown.
            return;
        }

        try
        {
            using var deadline = new CancellationTokenSource(ResetDeadline);
            await using var batch = Connection.CreateBatch();
            if (rollBackFirst)
            {
                batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
            }

            FixedStatements.AddReset(batch);
            await batch.ExecuteNonQueryAsync(deadline.Token).ConfigureAwait(false);
            _settled = true;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException or OperationCanceledException)
        {
            Discard();
        }
    }
}
