using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Enforcement.Identity;

/// <summary>Gateway-side agent status, shared by every instance on the same state store.</summary>
public interface IAgentDirectory
{
    /// <summary>
    /// The first of <paramref name="keys"/> (an agent name, or a subject, client or token id from <see cref="AgentKeys"/>) an
    /// admin has disabled, or null; checked on every call.
    /// </summary>
    ValueTask<string?> FindDisabledAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken);

    ValueTask SetDisabledAsync(string agent, bool disabled, string changedBy, CancellationToken cancellationToken);

    /// <summary>Every agent an admin has acted on, with its current switch.</summary>
    ValueTask<IReadOnlyList<AgentSetting>> ListAsync(CancellationToken cancellationToken);
}

/// <summary>An admin's last change to an agent: disabled or enabled, by whom, when.</summary>
public sealed record AgentSetting(string Agent, bool Disabled, string ChangedBy, DateTimeOffset Changed);

/// <summary>An agent the gateway has seen or an admin has acted on: its switch and its activity in the audit log.</summary>
public sealed record AgentStatus(string Agent, bool Disabled, DateTimeOffset? LastSeen, long Calls, long Denials, DateTimeOffset? FirstSeen = null)
{
    /// <summary>Where the agent's identity comes from: the issuers of the tokens it called with.</summary>
    public IReadOnlyList<string> Issuers { get; init; } = [];

    /// <summary>Joins the directory's switches with the audit log's activity, by agent name.</summary>
    public static IReadOnlyList<AgentStatus> Combine(IEnumerable<AgentSetting> settings, IEnumerable<AgentActivity> activity)
    {
        var disabled = settings.ToDictionary(s => s.Agent, s => s.Disabled, StringComparer.Ordinal);
        var seen = activity.ToDictionary(a => a.Agent, StringComparer.Ordinal);
        return disabled.Keys.Union(seen.Keys, StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .Select(name =>
            {
                seen.TryGetValue(name, out var a);
                return new AgentStatus(name, disabled.GetValueOrDefault(name), a?.LastSeen, a?.Calls ?? 0, a?.Denials ?? 0, a?.FirstSeen) { Issuers = a?.Issuers ?? [] };
            })
            .ToList();
    }
}
