using Gatehouse.Enforcement.Identity;

namespace Gatehouse.Connectors.State;

public sealed partial class SqliteStateStore : IAgentDirectory
{
    public async ValueTask<string?> FindDisabledAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken) =>
        (await QueryAsync(
            $"SELECT agent FROM agents WHERE disabled = 1 AND agent IN ({string.Join(", ", keys.Select((_, i) => $"$k{i}"))}) LIMIT 1",
            p =>
            {
                for (var i = 0; i < keys.Count; i++)
                {
                    p.AddWithValue($"$k{i}", keys[i]);
                }
            },
            r => r.GetString(0),
            cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    /// <summary>Whether this one key (an agent name, or an <see cref="AgentKeys"/> key) is disabled.</summary>
    public async ValueTask<bool> IsDisabledAsync(string key, CancellationToken cancellationToken) =>
        await FindDisabledAsync([key], cancellationToken).ConfigureAwait(false) is not null;

    public async ValueTask SetDisabledAsync(string agent, bool disabled, string changedBy, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "INSERT INTO agents (agent, disabled, changed_by, changed_ms) VALUES ($agent, $disabled, $by, $now)"
            + " ON CONFLICT(agent) DO UPDATE SET disabled = excluded.disabled, changed_by = excluded.changed_by, changed_ms = excluded.changed_ms",
            p =>
            {
                p.AddWithValue("$agent", agent);
                p.AddWithValue("$disabled", disabled ? 1 : 0);
                p.AddWithValue("$by", changedBy);
                p.AddWithValue("$now", ToMs(DateTimeOffset.UtcNow));
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<IReadOnlyList<AgentSetting>> ListAsync(CancellationToken cancellationToken) =>
        await QueryAsync(
            "SELECT agent, disabled, changed_by, changed_ms FROM agents ORDER BY agent",
            _ => { },
            r => new AgentSetting(r.GetString(0), r.GetInt64(1) != 0, r.GetString(2), FromMs(r.GetInt64(3))),
            cancellationToken).ConfigureAwait(false);
}
