using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Masking;

/// <summary>
/// Overlay masking: no objects in the database, so a statement whose plan uses a tagged column anywhere (or a whole row of a
/// table with tagged columns) is refused for a caller without the unmask right for that column's class. It fails closed.
/// </summary>
public static class OverlayMasking
{
    public static Decision? Check(PlanFacts plan, ConnectionConfig connection, IReadOnlySet<string> unmask)
    {
        if (connection.Tags.Count == 0 || unmask.Contains("all"))
        {
            return null;
        }

        // pg_stats shows sampled values of every column the login role may read (most common values, histogram bounds), and
        // in overlay mode that role reads the tagged columns: statistics hold raw values under no tagged column's name.
        if (plan.Relations.FirstOrDefault(r => r.Relation.Schema == "pg_catalog" && r.Relation.Name.StartsWith("pg_statistic", StringComparison.Ordinal)) is { } statistics)
        {
            return Decision.Deny("masking.tagged_column", $"the statement reads {statistics.Relation} (pg_stats), which holds sampled values of every column, tagged ones included; with tagged columns on this connection only a caller who may see every class unmasked may read it");
        }

        foreach (var target in plan.UnprintedTargetReads)
        {
            var relations = plan.SelfAndAncestors(target).ToList();
            var hidden = connection.Tags.Where(t => relations.Contains(t.Key.Relation) && !unmask.Contains(t.Value)).ToList();
            if (hidden.Count > 0)
            {
                return Decision.Deny("masking.tagged_column", $"the statement's MERGE or ON CONFLICT DO UPDATE on {target} may read any of its columns, and the plan does not show which, while it has sensitive columns ({string.Join(", ", hidden.Select(h => $"{h.Key.Column}: {h.Value}"))}) this caller may not see unmasked; use UPDATE and INSERT, whose plans show what they read");
            }
        }

        foreach (var use in plan.Columns)
        {
            // A partition or inheritance child has its parent's columns, and the parent's tags hold on them.
            var relations = plan.SelfAndAncestors(use.Relation).ToList();
            if (use.Column == ColumnUse.WholeRow)
            {
                var hidden = connection.Tags.Where(t => relations.Contains(t.Key.Relation) && !unmask.Contains(t.Value)).ToList();
                if (hidden.Count > 0)
                {
                    return Decision.Deny("masking.tagged_column", $"the statement uses whole rows of {use.Relation}, which has sensitive columns ({string.Join(", ", hidden.Select(h => $"{h.Key.Column}: {h.Value}"))}); name the columns you need instead");
                }
            }
            else if (relations.Select(r => connection.Tags.GetValueOrDefault(use with { Relation = r })).FirstOrDefault(c => c is not null && !unmask.Contains(c)) is { } className)
            {
                return Decision.Deny("masking.tagged_column", $"the statement uses {use}, tagged {className}, which this caller may not see unmasked (also not in filters, joins or sorts); leave that column out");
            }
        }

        return null;
    }

    /// <summary>The classes an identity may see unmasked: its own and its groups'.</summary>
    public static IReadOnlySet<string> UnmaskRights(GatewayPolicy policy, AgentIdentity identity)
    {
        var rights = new HashSet<string>(StringComparer.Ordinal);
        if (policy.Agents.TryGetValue(identity.Agent, out var agent))
        {
            rights.UnionWith(agent.Unmask);
        }

        foreach (var group in identity.Groups)
        {
            if (policy.Groups.TryGetValue(group, out var g))
            {
                rights.UnionWith(g.Unmask);
            }
        }

        return rights;
    }
}
