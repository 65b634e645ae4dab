using System.Diagnostics;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// The connection a call last gave back (reset, and healthy), kept open for the next call instead of going back to Npgsql's
/// pool. That pool lends its idle connections in turn, first in first out, so once it holds two (a call that met the catalog
/// poll, a burst of calls) calls made one after another alternate between PostgreSQL backends, each with its caches cold.
/// Traced with one agent over stdio: PostgreSQL took 155-168 µs (median) for a point query's round trip alternating between
/// two backends, 114 µs with the connection kept, 73 µs in a process of its own. Calls at once take the pool's connections
/// as before. A connection opened before the pool was drained (<see cref="Drop"/>) is never lent again.
/// <para>
/// A connection goes from call to call for at most <see cref="MaxKept"/> after it was taken from the pool, and then back to
/// the pool, kept busy or idle: the pool checks a connection's lifetime when it lends it, and closes one left idle too long
/// (Connection Idle Lifetime), and a connection kept out of it would be checked for neither. A sweep twice every
/// <see cref="MaxKept"/> gives back one left kept by the last call before a quiet spell, within half that time more.
/// </para>
/// </summary>
internal sealed class HotConnection : IDisposable
{
    public static readonly TimeSpan MaxKeptLimit = TimeSpan.FromMinutes(1);

    private readonly Timer _sweep;
    private Kept? _kept;
    private int _generation;

    /// <param name="maxKept">How long a connection may go from call to call without passing through the pool: at most a minute,
    /// and never longer than the connection's lifetime.</param>
    public HotConnection(TimeSpan maxKept)
    {
        MaxKept = maxKept < MaxKeptLimit ? maxKept : MaxKeptLimit;
        // The timer holds this object until Dispose (with the targets) stops it.
        _sweep = new Timer(static state => ((HotConnection)state!).Sweep(), this, MaxKept / 2, MaxKept / 2);
    }

    /// <summary>A connection kept, the generation it was opened in, and when it was taken from the pool (a <see cref="Stopwatch"/> timestamp).</summary>
    public sealed record Kept(NpgsqlConnection Connection, int Generation, long Since);

    public TimeSpan MaxKept { get; }

    /// <summary>The generation now: it changes when the connection's pool is drained.</summary>
    public int Generation => Volatile.Read(ref _generation);

    /// <summary>
    /// The kept connection, if there is one from this generation and it is not due back in the pool; one from an earlier
    /// generation is closed, and one due back is given back.
    /// </summary>
    public Kept? Take()
    {
        while (Interlocked.Exchange(ref _kept, null) is { } kept)
        {
            if (kept.Generation == Generation && !Due(kept.Since))
            {
                return kept;
            }

            kept.Connection.Dispose();
        }

        return null;
    }

    /// <summary>
    /// Keeps a connection opened in <paramref name="generation"/> and taken from the pool at <paramref name="since"/>; false
    /// (keep nothing) when one is kept already, the pool has been drained since, or it is due back in the pool. True means
    /// the connection is this object's to close.
    /// </summary>
    public bool TryKeep(NpgsqlConnection connection, int generation, long since)
    {
        if (generation != Generation || Due(since))
        {
            return false;
        }

        var kept = new Kept(connection, generation, since);
        if (Interlocked.CompareExchange(ref _kept, kept, null) is not null)
        {
            return false;
        }

        // Drained between the check and the keep: Drop found nothing to close, so close it here (unless a call took it first;
        // Take closes a connection from an earlier generation).
        if (generation != Generation && Interlocked.CompareExchange(ref _kept, null, kept) == kept)
        {
            connection.Dispose();
        }

        return true;
    }

    /// <summary>Closes the kept connection and turns away the ones opened before now (when the pool is drained).</summary>
    public void Drop()
    {
        Interlocked.Increment(ref _generation);
        Take();
    }

    /// <summary>Stops the sweep and closes the kept connection (with the targets).</summary>
    public void Dispose()
    {
        _sweep.Dispose();
        Drop();
    }

    private bool Due(long since) => Stopwatch.GetElapsedTime(since) >= MaxKept;

    // Gives back a connection that is due, when no call has taken it since.
    private void Sweep()
    {
        if (Volatile.Read(ref _kept) is { } kept && Due(kept.Since) && Interlocked.CompareExchange(ref _kept, null, kept) == kept)
        {
            try
            {
                kept.Connection.Dispose();
            }
            catch (Exception)
            {
                // On a timer thread, where an exception would end the process. Closing a reset, idle connection does no I/O;
                // whatever went wrong, it is no longer kept, and the pool does not lend a connection it could not take back.
            }
        }
    }
}
