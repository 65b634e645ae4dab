using Gatehouse.Enforcement.Pipeline;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// On SIGTERM (or Ctrl-C): refuse new calls, let those in flight finish until <see cref="Deadline"/>, cut off and record
/// the rest, and only then let the host close the pools and stores. /readyz says "not ready" from the first moment.
/// </summary>
public sealed class GracefulShutdown(GatewayLifetime lifetime, ILogger<GracefulShutdown> logger) : IHostedService
{
    /// <summary>How long calls in flight may take to finish once the gateway is asked to stop.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    /// <summary>How long cut-off calls get to record how they ended.</summary>
    public static readonly TimeSpan RecordGrace = TimeSpan.FromSeconds(5);

    /// <summary>The host's own shutdown timeout must outlast both.</summary>
    public static TimeSpan HostTimeout => Deadline + RecordGrace + TimeSpan.FromSeconds(5);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        HostLog.Stopping(logger, Deadline.TotalSeconds, lifetime.InFlight);
        var cut = await lifetime.StopAsync(Deadline, RecordGrace);
        if (cut > 0)
        {
            HostLog.StoppedCuttingOff(logger, cut);
        }
        else
        {
            HostLog.StoppedCleanly(logger);
        }
    }
}
