using Gatehouse.Connectors.Postgres;
using Gatehouse.Connectors.State;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Carries out <c>gatehouse connections rotate</c> on this instance: watches the rotation counters in the state store
/// (shared by every instance) and drains the pool of a connection whose counter moved. Calls in flight finish on their
/// connection; the next ones log in with the password as it is now.
/// </summary>
public sealed class PoolRotation(SqlStateStore store, PostgresTargets targets, TimeProvider time, ILogger<PoolRotation> logger) : BackgroundService
{
    /// <summary>How often the counters are read: a rotation reaches every instance within about this long.</summary>
    public static readonly TimeSpan Every = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        IReadOnlyDictionary<string, long>? seen = null;
        var failing = false;
        using var timer = new PeriodicTimer(Every, time);
        do
        {
            try
            {
                var now = await store.RotationsAsync(stoppingToken);
                foreach (var (connection, generation) in now)
                {
                    // The first read is the baseline: this instance's pools opened after any earlier rotation.
                    if (seen is not null && seen.GetValueOrDefault(connection) != generation)
                    {
                        targets.Drain(connection);
                        HostLog.PoolRotated(logger, connection, generation);
                    }
                }

                seen = now;
                failing = false;
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // The readiness probe reports an unreachable store; this only says rotation waits for it, once.
                if (!failing)
                {
                    HostLog.RotationWatchFailed(logger, e.Message);
                }

                failing = true;
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }
}
