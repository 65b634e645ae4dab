using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Cli;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Retention in the background of <c>gatehouse serve</c>: at start and then every <see cref="AuditRetention.Every"/>, purges
/// what the policy's max_age and max_records say is due, leaving a signed checkpoint so the rest still verifies. Several
/// instances may run it against one store: the purge is one transaction under the chain lock.
/// </summary>
public sealed class AuditRetentionJob(GatewayPolicy policy, IAuditLog audit, TimeProvider time, ILogger<AuditRetentionJob> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retention = policy.Gateway.Audit.Retention;
        var key = CheckpointKey.For(policy);
        using var timer = new PeriodicTimer(retention.Every, time);
        do
        {
            try
            {
                var checkpoint = await audit.PurgeAsync(retention.Cut, key.Sign, stoppingToken);
                if (checkpoint is not null)
                {
                    // Logged, not recorded: a record of each purge would itself count toward max_records, and an idle gateway
                    // would purge one record per round for ever. The signed checkpoint is what stays of it.
                    HostLog.RetentionPurged(logger, checkpoint.Purged, checkpoint.ThroughSeq);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Retention must never take the gateway down; the next round tries again.
                HostLog.RetentionFailed(logger, e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }
}
