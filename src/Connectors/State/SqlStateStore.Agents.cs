using Gatehouse.Enforcement.Identity;

namespace Gatehouse.Connectors.State;

public abstract partial class SqlStateStore : IAgentDirectory
{
    public virtual async ValueTask<string?> FindDisabledAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken) =>
        (await AuditQueryAsync(
            $"SELECT agent FROM agents WHERE disabled = 1 AND agent IN ({string.Join(", ", keys.Select((_, i) => $"${i + 1}"))}) LIMIT 1",
            [.. keys],
            r => r.GetString(0),
            cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    /// <summary>Whether this one key (an agent name, or an <see cref="AgentKeys"/> key) is disabled.</summary>
    public async ValueTask<bool> IsDisabledAsync(string key, CancellationToken cancellationToken) =>
        await FindDisabledAsync([key], cancellationToken).ConfigureAwait(false) is not null;

    public async ValueTask SetDisabledAsync(string agent, bool disabled, string changedBy, CancellationToken cancellationToken) =>
        await ExecuteStateAsync(
            "INSERT INTO agents (agent, disabled, changed_by, changed_ms) VALUES ($1, $2, $3, $4)"
            + " ON CONFLICT (agent) DO UPDATE SET disabled = excluded.disabled, changed_by = excluded.changed_by, changed_ms = excluded.changed_ms",
            [agent, disabled ? 1L : 0L, changedBy, ToMs(DateTimeOffset.UtcNow)],
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<IReadOnlyList<AgentSetting>> ListAsync(CancellationToken cancellationToken) =>
        await AuditQueryAsync(
            "SELECT agent, disabled, changed_by, changed_ms FROM agents ORDER BY agent",
            [],
            r => new AgentSetting(r.GetString(0), r.GetInt64(1) != 0, r.GetString(2), FromMs(r.GetInt64(3))),
            cancellationToken).ConfigureAwait(false);
}
