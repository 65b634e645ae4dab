namespace Gatehouse.Enforcement.Policy;

/// <summary>
/// What <c>gatehouse policy check</c> points out without failing the check: a guardrail matching on an agent or group the
/// policy names nowhere else. Such a name may be real (an identity provider can name agents and groups the policy never
/// lists), or a typo that makes the guardrail silently never match.
/// </summary>
public static class PolicyNotes
{
    public static IReadOnlyList<string> Of(GatewayPolicy policy)
    {
        var agents = policy.Agents.Keys.Concat(policy.Issuers.SelectMany(i => i.Agents ?? [])).ToHashSet(StringComparer.Ordinal);
        var groups = policy.Groups.Keys
            .Concat(policy.Issuers.SelectMany(i => i.Groups ?? []))
            .Concat(policy.Connections.Values.SelectMany(c => c.GroupRoles.Select(m => m.Group)))
            .Concat(policy.Approvals.ApproverGroups)
            .Concat(policy.Quotas.Groups.Keys)
            .Concat(policy.Admin?.Groups ?? [])
            .ToHashSet(StringComparer.Ordinal);
        var notes = new List<string>();
        foreach (var rule in policy.Guardrails)
        {
            notes.AddRange(rule.Match.Agents.Where(a => !agents.Contains(a)).Select(a =>
                $"guardrail '{rule.Id}' matches agent '{a}', whom the policy names nowhere else (no agents entry, no issuer's agents list); if that is a typo, the guardrail never matches"));
            notes.AddRange(rule.Match.Groups.Where(g => !groups.Contains(g)).Select(g =>
                $"guardrail '{rule.Id}' matches group '{g}', which the policy names nowhere else (no groups entry, issuer's groups list, group_roles, approver, admin or quota groups); if that is a typo, the guardrail never matches"));
        }

        return notes;
    }
}
