using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// The gateway's own state: the embedded store (access requests, approvals, agent switches) and the audit log, which is the
/// same SQLite file unless <c>gateway.audit.store</c> is postgres.
/// </summary>
public sealed record GatewayState(SqliteStateStore Store, IAuditLog Audit)
{
    public static async Task<GatewayState> OpenAsync(GatewayPolicy policy, CancellationToken cancellationToken)
    {
        var store = await SqliteStateStore.OpenAsync(policy.Gateway.StatePath, cancellationToken);
        var settings = policy.Gateway.Audit;
        IAuditLog audit = settings.PostgresConnectionString is { } connectionString
            ? await PostgresAuditLog.OpenAsync(connectionString, settings.PostgresPassword.Read, cancellationToken)
            : store;
        return new GatewayState(store, audit);
    }

    /// <summary>Agents with their switches (from the store) and activity (from the audit log).</summary>
    public async Task<IReadOnlyList<Enforcement.Identity.AgentStatus>> AgentsAsync(CancellationToken cancellationToken) =>
        Enforcement.Identity.AgentStatus.Combine(await Store.ListAsync(cancellationToken), await Audit.AgentActivityAsync(cancellationToken));
}
