using System.Data;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// A pooled connection lent for one piece of work, and given back as a new one starts: nothing one agent's statement did to
/// the session reaches the next. Npgsql's own reset on return is off (<see cref="FixedStatements.Configure"/>): it parsed and
/// ran seven statements at the head of the next call's round trip, about a sixth of PostgreSQL's work on a point query.
/// <list type="bullet">
/// <item>A read ends its own batch with <see cref="FixedStatements.ReleaseLocks"/> and ROLLBACK and says so
/// (<see cref="MarkReset"/>). A rolled-back transaction takes its settings, role, cursors, LISTENs and temporary tables with
/// it, and a read-only one cannot touch a sequence, so a session advisory lock (which a function, or the planner folding one,
/// can take) is all it leaves.</item>
/// <item>A write ends its COMMIT batch with the full <see cref="FixedStatements.Reset"/>; a failed call rolls back and resets
/// (<see cref="RollBackAsync"/>).</item>
/// <item>Anything else gets the full reset when it is disposed. When a reset cannot run, the pool is cleared, so this
/// connection is closed when it comes back instead of being lent again.</item>
/// </list>
/// </summary>
public sealed class PooledConnection(NpgsqlConnection connection) : IAsyncDisposable
{
    // Reset, or discarded: either way nothing is left to do when it is disposed.
    private bool _settled;

    public NpgsqlConnection Connection { get; } = connection;

    /// <summary>The work's last batch has completed, ending with the reset it needed.</summary>
    internal void MarkReset() => _settled = true;

    /// <summary>The connection is not known to be clean: it is closed when it comes back, never lent again.</summary>
    internal void Discard()
    {
        NpgsqlConnection.ClearPool(Connection);
        _settled = true;
    }

    /// <summary>After a failure: rolls back whatever transaction is open and resets, never throwing.</summary>
    internal ValueTask RollBackAsync() => SettleAsync(rollBackFirst: true);

    public async ValueTask DisposeAsync()
    {
        if (!_settled)
        {
            await SettleAsync(rollBackFirst: false).ConfigureAwait(false);
        }

        await Connection.DisposeAsync().ConfigureAwait(false);
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
            Discard(); // Still busy with a command or a reader: what it has done to the session is unknown.
            return;
        }

        try
        {
            await using var batch = Connection.CreateBatch();
            if (rollBackFirst)
            {
                batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
            }

            FixedStatements.AddReset(batch);
            await batch.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            _settled = true;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException)
        {
            // Not known to be clean, so never lent again: the pool closes it, and every connection out now, on their return.
            Discard();
        }
    }
}
