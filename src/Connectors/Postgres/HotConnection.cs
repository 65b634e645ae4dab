using System.Diagnostics;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// The connection a call last gave back (reset, and healthy), kept open for the next call instead of going back to Npgsql's
/// pool. That pool lends its idle connections in turn, first in first out, so once it holds two (a call that met the catalog
/// poll, a burst of calls) calls made one after another alternate between PostgreSQL backends, each with its caches cold.
/// Traced with one agent over stdio: PostgreSQL took 155-168 µs (median) for a point query's round trip alternating between
/// two backends, 114 µs with the connection kept, 73 µs in a process of its own. Calls at once take the pool's connections
/// as before; one connection per target stays open while the gateway is idle. A connection opened before the pool was
/// drained (<see cref="Drop"/>) is never lent again. One taken from the pool longer than <see cref="MaxKept"/> ago goes back
/// to it instead of being kept: the pool checks a connection's lifetime when it lends it, and a connection kept from call to
/// call would otherwise never be checked.
/// </summary>
/// <param name="maxKept">How long a connection may go from call to call without passing through the pool: at most a minute,
/// and never longer than the connection's lifetime.</param>
internal sealed class HotConnection(TimeSpan maxKept)
{
    public static readonly TimeSpan MaxKeptLimit = TimeSpan.FromMinutes(1);

    private Kept? _kept;
    private int _generation;

    /// <summary>A connection kept, the generation it was opened in, and when it was taken from the pool (a <see cref="Stopwatch"/> timestamp).</summary>
    public sealed record Kept(NpgsqlConnection Connection, int Generation, long Since);

    public TimeSpan MaxKept { get; } = maxKept < MaxKeptLimit ? maxKept : MaxKeptLimit;

    /// <summary>The generation now: it changes when the connection's pool is drained.</summary>
    public int Generation => Volatile.Read(ref _generation);

    /// <summary>The kept connection, if there is one from this generation; one from an earlier generation is closed.</summary>
    public Kept? Take()
    {
        while (Interlocked.Exchange(ref _kept, null) is { } kept)
        {
            if (kept.Generation == Generation)
            {
                return kept;
            }

            kept.Connection.Dispose();
        }

        return null;
    }

    /// <summary>
    /// Keeps a connection opened in <paramref name="generation"/> and taken from the pool at <paramref name="since"/>; false
    /// (keep nothing) when one is kept already, the pool has been drained since, or it has gone <see cref="MaxKept"/> without
    /// passing through the pool.
    /// </summary>
    public bool TryKeep(NpgsqlConnection connection, int generation, long since) =>
        generation == Generation
        && Stopwatch.GetElapsedTime(since) < MaxKept
        && Interlocked.CompareExchange(ref _kept, new Kept(connection, generation, since), null) is null;

    /// <summary>Closes the kept connection and turns away the ones opened before now (when the pool is drained).</summary>
    public void Drop()
    {
        Interlocked.Increment(ref _generation);
        Take();
    }
}
