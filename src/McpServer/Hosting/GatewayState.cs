using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// The gateway's own state: access requests, approvals, agent switches and the audit log, in the SQLite state file, or in
/// PostgreSQL when <c>gateway.store</c> names one (for several instances).
/// </summary>
public sealed record GatewayState(SqlStateStore Store)
{
    /// <summary>The audit log: the same store.</summary>
    public IAuditLog Audit => Store;

    public static async Task<GatewayState> OpenAsync(GatewayPolicy policy, CancellationToken cancellationToken)
    {
        SqlStateStore store = policy.Gateway.Store.PostgresConnectionString is { } connectionString
            ? await PostgresStateStore.OpenAsync(connectionString, policy.Gateway.Store.Password.Read, cancellationToken)
            : await SqliteStateStore.OpenAsync(policy.Gateway.StatePath, cancellationToken);
        store.Durability = policy.Gateway.Audit.Durability;
        return new GatewayState(store);
    }

    /// <summary>Agents with their switches (from the store) and activity (from the audit log).</summary>
    public async Task<IReadOnlyList<Enforcement.Identity.AgentStatus>> AgentsAsync(CancellationToken cancellationToken) =>
        Enforcement.Identity.AgentStatus.Combine(await Store.ListAsync(cancellationToken), await Audit.AgentActivityAsync(cancellationToken));
}
