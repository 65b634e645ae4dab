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

    public async ValueTask<IReadOnlyList<AgentStatus>> ListAsync(CancellationToken cancellationToken) =>
        await QueryAsync(
            "SELECT name, COALESCE((SELECT disabled FROM agents WHERE agents.agent = name), 0), MAX(last_ms), SUM(calls), SUM(denials) FROM ("
            + " SELECT agent AS name, MAX(time_ms) AS last_ms, COUNT(*) AS calls, SUM(decision = 'Denied') AS denials FROM audit WHERE agent IS NOT NULL GROUP BY agent"
            + " UNION ALL SELECT agent, NULL, 0, 0 FROM agents) GROUP BY name ORDER BY name",
            _ => { },
            r => new AgentStatus(r.GetString(0), r.GetInt64(1) != 0, NullableLong(r, 2) is { } ms ? FromMs(ms) : null, r.GetInt64(3), r.GetInt64(4)),
            cancellationToken).ConfigureAwait(false);
}
