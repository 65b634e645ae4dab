using System.Collections.Concurrent;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Authorization;

/// <summary>Collects the grants an identity holds on a connection: its own, its groups', and unexpired approved requests.</summary>
public sealed class GrantResolver(GatewayPolicy policy, IApprovalStore approvals)
{
    // Each group's grants marked with their source, made once per policy: the same objects on every call, so what is worked
    // out from them can be kept (DatabaseProfiles.ForCall).
    private readonly ConcurrentDictionary<string, Grant[]> _groupGrants = new(StringComparer.Ordinal);

    public async ValueTask<IReadOnlyList<Grant>> ResolveAsync(AgentIdentity identity, string connection, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await ResolveRightsAsync(identity, connection, now, cancellationToken).ConfigureAwait(false)).Grants;

    /// <summary>
    /// An identity's grants on a connection and the classes it may see unmasked there: its own and its groups' in the policy,
    /// and unexpired approved requests, read from the store once.
    /// </summary>
    public async ValueTask<(IReadOnlyList<Grant> Grants, IReadOnlySet<string> Unmask)> ResolveRightsAsync(AgentIdentity identity, string connection, DateTimeOffset now, CancellationToken cancellationToken)
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
                grants.AddRange(_groupGrants.GetOrAdd(group, static (name, held) => [.. held.Select(x => x with { Source = $"group {name}" })], g.Grants));
            }
        }

        // A grant asked for on behalf of alice serves the agent acting for alice only: acting for bob, who may have approved it,
        // or on its own, the agent does not hold it.
        var timeBoxed = await StateUnavailableException.GuardAsync(
            "read this agent's time-boxed grants", () => approvals.ActiveGrantsAsync(identity.Agent, now, cancellationToken)).ConfigureAwait(false);
        grants.AddRange(timeBoxed.Where(g => g.DelegatedBy == identity.DelegatedBy));

        var onConnection = grants.Where(g => g.Connection == connection).ToList();
        var unmask = new HashSet<string>(Masking.OverlayMasking.UnmaskRights(policy, identity), StringComparer.Ordinal);
        unmask.UnionWith(onConnection.Where(g => g.Unmask is not null).Select(g => g.Unmask!));
        return (onConnection, unmask);
    }
}
