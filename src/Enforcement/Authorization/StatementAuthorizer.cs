using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Authorization;

/// <summary>Decides whether an identity's grants cover a statement: first by its kind, then by every relation its plan touches.</summary>
public static class StatementAuthorizer
{
    /// <summary>Whether the grants give any access to the connection: an unmask right alone changes only what is seen of what may be read.</summary>
    public static bool GivesAccess(IReadOnlyList<Grant> grants) => grants.Any(g => g.Unmask is null);

    /// <summary>The kind check, made before PostgreSQL is asked anything.</summary>
    public static Decision AuthorizeKind(AgentIdentity identity, string connection, IReadOnlyList<Grant> grants, StatementText statement)
    {
        if (!GivesAccess(grants))
        {
            return Decision.Deny("grant.no_access", $"agent '{identity.Agent}' has no grant on connection '{connection}'; ask an admin, or use request_access");
        }

        if (statement.Kind == StatementKind.Select)
        {
            return Decision.Allow("grant.kind", "SELECT is covered by a read grant");
        }

        if (statement.Kind == StatementKind.Explain)
        {
            return statement.Inner?.Kind == StatementKind.Select
                ? Decision.Allow("grant.kind", "EXPLAIN of a SELECT is covered by a read grant")
                : Decision.Deny("grant.kind_not_allowed", $"EXPLAIN is allowed only for a SELECT (this explains {statement.Inner?.Keyword ?? "nothing"}); EXPLAIN ANALYZE would run the statement");
        }

        if (statement.Kind.IsDml())
        {
            return grants.Any(g => g.Allows(AccessLevel.Write))
                ? Decision.Allow("grant.kind", $"{statement.Keyword} is covered by a write grant")
                : Decision.Deny("grant.read_only", $"{statement.Keyword} changes data and needs write access; agent '{identity.Agent}' has only read access on connection '{connection}'. Use request_access to ask for write access to specific tables");
        }

        return Decision.Deny("grant.kind_not_allowed", $"{statement.Keyword} is a {statement.Kind.Name()} statement, which no Gatehouse grant allows; only SELECT (read) and INSERT/UPDATE/DELETE/MERGE (write) can be granted");
    }

    /// <summary>The relation check: every relation the plan reads or writes must be inside a grant with enough access.</summary>
    public static Decision AuthorizePlan(AgentIdentity identity, string connection, IReadOnlyList<Grant> grants, PlanFacts plan)
    {
        foreach (var access in plan.Relations.OrderByDescending(r => r.Access))
        {
            // A partition's rows are its table's, so a grant on the table covers them; an inheritance child may have columns
            // of its own, and needs a grant of its own.
            var covering = grants.Where(g => g.Covers(access.Relation)
                || (plan.Lineage.GetValueOrDefault(access.Relation) is { Partition: true } lineage && lineage.Ancestors.Any(g.Covers))).ToList();
            if (covering.Count == 0)
            {
                return Decision.Deny("grant.relation_not_granted", $"agent '{identity.Agent}' has no grant covering {access.Relation} on connection '{connection}'");
            }

            if (!covering.Any(g => g.Allows(access.Access)))
            {
                return Decision.Deny("grant.relation_read_only", $"the statement would {access.Operation} {access.Relation}, which needs write access; agent '{identity.Agent}' may only read it");
            }
        }

        var touched = plan.Relations.Count == 0 ? "no tables" : string.Join(", ", plan.Relations.Select(r => $"{r.Relation} ({r.Access.ToPolicyString()})"));
        return Decision.Allow("grant.covered", $"grants cover {touched}");
    }
}
