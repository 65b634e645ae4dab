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

    /// <param name="create">
    /// Whether missing state (the file, or the schema in PostgreSQL) may be made: a gateway starting makes its own, while an admin command given a path where
    /// none is (a policy copied elsewhere, a deleted file) would otherwise act on an empty store no gateway reads, and report
    /// success: a revocation that revokes nothing, a verification of no records.
    /// </param>
    public static async Task<GatewayState> OpenAsync(GatewayPolicy policy, CancellationToken cancellationToken, bool create = true)
    {
        if (!create && policy.Gateway.Store.PostgresConnectionString is null && !File.Exists(policy.Gateway.StatePath))
        {
            throw new MissingStateException(
                $"no gateway state at {policy.Gateway.StatePath}",
                "no gateway has run with this policy there (gateway.state is read relative to the policy file). "
                + "Point --config at the policy the gateway runs with; `gatehouse serve` creates the state when it first starts.");
        }

        SqlStateStore store = policy.Gateway.Store.PostgresConnectionString is { } connectionString
            ? await PostgresStateStore.OpenAsync(connectionString, policy.Gateway.Store.Password.Read, cancellationToken, create)
            : await SqliteStateStore.OpenAsync(policy.Gateway.StatePath, cancellationToken);
        store.Durability = policy.Gateway.Audit.Durability;
        return new GatewayState(store);
    }

    /// <summary>Agents with their switches (from the store) and activity (from the audit log).</summary>
    public async Task<IReadOnlyList<Enforcement.Identity.AgentStatus>> AgentsAsync(CancellationToken cancellationToken) =>
        Enforcement.Identity.AgentStatus.Combine(await Store.ListAsync(cancellationToken), await Audit.AgentActivityAsync(cancellationToken));
}
