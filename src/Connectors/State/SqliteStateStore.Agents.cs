using Gatehouse.Enforcement.Identity;

namespace Gatehouse.Connectors.State;

public sealed partial class SqliteStateStore : IAgentDirectory
{
    public async ValueTask<bool> IsDisabledAsync(string agent, CancellationToken cancellationToken) =>
        (await QueryAsync("SELECT disabled FROM agents WHERE agent = $agent", p => p.AddWithValue("$agent", agent), r => r.GetInt64(0) != 0, cancellationToken).ConfigureAwait(false))
        .FirstOrDefault();

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
