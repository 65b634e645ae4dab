using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Authorization;

/// <summary>Collects the grants an identity holds on a connection: its own, its groups', and unexpired approved requests.</summary>
public sealed class GrantResolver(GatewayPolicy policy, IApprovalStore approvals)
{
    public async ValueTask<IReadOnlyList<Grant>> ResolveAsync(AgentIdentity identity, string connection, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var grants = new List<Grant>();
        if (policy.Agents.TryGetValue(identity.Agent, out var agent))
        {
            grants.AddRange(agent.Grants);
        }

        foreach (var group in identity.Groups)
        {
            if (policy.Groups.TryGetValue(group, out var g))
            {
                grants.AddRange(g.Grants.Select(x => x with { Source = $"group {group}" }));
            }
        }

        grants.AddRange(await approvals.ActiveGrantsAsync(identity.Agent, now, cancellationToken).ConfigureAwait(false));
        return grants.Where(g => g.Connection == connection).ToList();
    }

    /// <summary>The classes an identity may see unmasked on a connection: its own and its groups' in the policy, and approved unmask requests.</summary>
    public async ValueTask<IReadOnlySet<string>> UnmaskAsync(AgentIdentity identity, string connection, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var rights = new HashSet<string>(Masking.OverlayMasking.UnmaskRights(policy, identity), StringComparer.Ordinal);
        foreach (var (on, className) in await approvals.ActiveUnmaskAsync(identity.Agent, now, cancellationToken).ConfigureAwait(false))
        {
            if (on == connection)
            {
                rights.Add(className);
            }
        }

        return rights;
    }
}
