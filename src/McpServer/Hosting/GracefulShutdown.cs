using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// On SIGTERM (or Ctrl-C): refuse new calls, let those in flight finish until <see cref="Deadline"/>, cut off and record
/// the rest, and only then let the host close the pools and stores. /readyz says "not ready" from the first moment.
/// </summary>
public sealed class GracefulShutdown(GatewayLifetime lifetime, GatewayPolicy policy, ILogger<GracefulShutdown> logger) : IHostedLifecycleService
{
    /// <summary>How long cut-off calls get to record how they ended.</summary>
    public static readonly TimeSpan RecordGrace = TimeSpan.FromSeconds(5);

    /// <summary>How long calls in flight may take to finish (<c>gateway.shutdown_deadline</c>, bound at start).</summary>
    private TimeSpan Deadline => policy.Gateway.ShutdownDeadline;

    /// <summary>The host's own shutdown timeout must outlast the deadline and the grace.</summary>
    public static TimeSpan HostTimeout(GatewayPolicy policy) => policy.Gateway.ShutdownDeadline + RecordGrace + TimeSpan.FromSeconds(5);

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // Before any hosted service stops: the web server would otherwise hold the shutdown until its own requests end.
    public async Task StoppingAsync(CancellationToken cancellationToken)
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
