namespace Gatehouse.Connectors.State;

/// <summary>
/// Credential rotations asked for with <c>gatehouse connections rotate</c>: a counter per connection that every gateway
/// sharing this state watches, draining its pool for that connection when the counter moves.
/// </summary>
public abstract partial class SqlStateStore
{
    /// <summary>Asks every gateway sharing this state to drain its pool for <paramref name="connection"/>; returns the new count.</summary>
    public async Task<long> RequestRotationAsync(string connection, string requestedBy, CancellationToken cancellationToken)
    {
        await ExecuteStateAsync(
            "INSERT INTO connection_rotations (connection, generation, requested_by, requested_ms) VALUES ($1, 1, $2, $3)"
            + " ON CONFLICT (connection) DO UPDATE SET generation = connection_rotations.generation + 1, requested_by = excluded.requested_by, requested_ms = excluded.requested_ms",
            [connection, requestedBy, ToMs(DateTimeOffset.UtcNow)],
            cancellationToken).ConfigureAwait(false);
        return (await RotationsAsync(cancellationToken).ConfigureAwait(false))[connection];
    }

    /// <summary>How many rotations each connection has had (connections never rotated are absent).</summary>
    public async Task<IReadOnlyDictionary<string, long>> RotationsAsync(CancellationToken cancellationToken) =>
        (await AuditQueryAsync("SELECT connection, generation FROM connection_rotations", [], r => (r.GetString(0), r.GetInt64(1)), cancellationToken).ConfigureAwait(false))
            .ToDictionary(r => r.Item1, r => r.Item2, StringComparer.Ordinal);
}
