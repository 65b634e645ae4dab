using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Guardrails;

/// <summary>
/// Judges a classified statement against the built-in guards and the policy's rules. A matching deny rule refuses wherever it
/// stands; otherwise the first matching require_approval rule sends the statement to a human. (An approval must never lift a
/// refusal that a later rule would make.)
/// </summary>
public static class GuardrailEvaluator
{
    // The write limit's rule: judged before the policy's rules, and alone.
    private const string LargeWrite = "guard.large_write";

    public static Decision? Evaluate(StatementText statement, PlanFacts plan, AgentIdentity identity, string connection, IReadOnlyList<GuardrailRule> rules, double maxWriteRows)
    {
        if (plan.Writes && plan.EstimatedWriteRows > maxWriteRows)
        {
            return Decision.Deny(LargeWrite, $"the planner estimates this write touches about {plan.EstimatedWriteRows:0} rows; the limit is {maxWriteRows:0}. Narrow the WHERE clause or split the work");
        }

        Decision? approval = null;
        foreach (var rule in rules)
        {
            if (Applies(rule, connection, statement, plan, identity))
            {
                var message = rule.Message ?? $"guardrail '{rule.Id}' matches this statement";
                if (rule.Outcome == GuardrailOutcome.Deny)
                {
                    return Decision.Deny($"guard.{rule.Id}", message);
                }

                approval ??= Decision.Deny($"guard.{rule.Id}", $"{message}. It needs a human's approval (rule '{rule.Id}')") with { NeedsApproval = true };
            }
        }

        return approval;
    }

    /// <summary>
    /// The same judgement for a write that ran, by the rows it really touched (the estimate can be steered) and the tables it
    /// really wrote (a foreign-key cascade or a trigger writes tables the plan does not show), before it commits: past the
    /// limit, or matching a rule the plan did not, it is rolled back. <paramref name="ownRows"/> is the count PostgreSQL
    /// reported for the statement itself (null: none), which tells an UPDATE's row movement from a trigger's writes. Not
    /// <paramref name="enforced"/> (observe_only), the refusal is only recorded, and says nothing of a rollback.
    /// </summary>
    public static Decision? EvaluateWritten(
        StatementText statement, PlanFacts plan, AgentIdentity identity, string connection, IReadOnlyList<GuardrailRule> rules, double maxWriteRows,
        long rows, long? ownRows, IReadOnlyList<TableWrites> tables, bool enforced = true)
    {
        var rolledBack = enforced ? ", so it was rolled back and nothing changed" : "";
        if (rows > maxWriteRows)
        {
            return Decision.Deny(LargeWrite, $"this write touched {rows} rows, more than the limit of {maxWriteRows:0} (the planner estimated about {plan.EstimatedWriteRows:0}){rolledBack}. Narrow the WHERE clause or split the work");
        }

        // The plan and the plan with the tables really written, each judged by the rows really touched.
        var (written, unplanned) = WithTablesWritten(plan, statement, ownRows, tables);
        (plan, written) = (plan with { EstimatedWriteRows = rows }, written with { EstimatedWriteRows = rows });
        if (Evaluate(statement, written, identity, connection, rules, double.PositiveInfinity) is not { } decision)
        {
            return null;
        }

        // An approval the plan's own rule asks for anyway (a dry run's) names the first rule only its writes met, where one
        // does (one its plan meets too says nothing new): that is what an approver must hear of.
        var byPlan = Evaluate(statement, plan, identity, connection, rules, double.PositiveInfinity);
        if (decision.NeedsApproval && byPlan == decision
            && rules.FirstOrDefault(r => r.Outcome == GuardrailOutcome.RequireApproval && Applies(r, connection, statement, written, identity) && !Applies(r, connection, statement, plan, identity))
                is { } other)
        {
            decision = Evaluate(statement, written, identity, connection, [other], double.PositiveInfinity)!;
        }

        // Named by the writes that meet the rule on their own, where some do: a trigger's write elsewhere is beside the point.
        var rule = rules.FirstOrDefault(r => $"guard.{r.Id}" == decision.Rule);
        bool Meets(RelationAccess access) =>
            rule is not null && Applies(rule, connection, statement, plan with { Relations = [.. plan.Relations, access], Lineage = written.Lineage }, identity);
        IReadOnlyList<RelationAccess> Culprits(IReadOnlyList<RelationAccess> writes) => writes.Where(Meets).ToList() is { Count: > 0 } meeting ? meeting : writes;

        var partitions = written.Relations.Except(plan.Relations).Except(unplanned).ToList();
        var why = byPlan == decision
            ? "more than the planner estimated"
            : unplanned.Count > 0 && (unplanned.Any(Meets) || !partitions.Any(Meets))
                ? $"and also {string.Join(", ", Culprits(unplanned).Select(Described))} through its triggers or foreign-key cascades{Moves(Culprits(unplanned))}, which its plan does not show"
                : $"in {string.Join(", ", Culprits(partitions).Select(a => a.Relation).Distinct())}, which its plan names only by their tables";
        return decision with { Reason = $"{decision.Reason} (this write touched {rows} rows, {why}{rolledBack})" };

        static string Described(RelationAccess access) => access.Operation switch
        {
            "insert" => $"inserted into {access.Relation}",
            "update" => $"updated {access.Relation}",
            _ => $"deleted from {access.Relation}",
        };

        // A row moved to another partition is counted as deleted from one and inserted into the other, as a trigger's rows
        // would be: where the two could not be told apart, the refusal says so. (An upsert never moves a row: PostgreSQL
        // refuses one that would.)
        string Moves(IReadOnlyList<RelationAccess> writes) =>
            statement.Kind is StatementKind.Update or StatementKind.Merge
            && writes.Any(w => w.Operation is "insert" or "delete" && written.Lineage.TryGetValue(w.Relation, out var lineage) && lineage.Partition
                && plan.Relations.Any(r => r.Access == AccessLevel.Write && lineage.Ancestors.Contains(r.Relation) && Operations(r, statement).Contains("update")))
                ? statement.Kind == StatementKind.Update
                    ? " (or rows it moved between partitions, which PostgreSQL counts as deleted from one and inserted into another: they pass as moved only when, with no trigger writing its table's partitions, the counts add up to the rows the statement reports, and no partition of its table is a foreign table or another kind of storage)"
                    : " (or rows it moved between partitions, which PostgreSQL counts as deleted from one and inserted into another: for a MERGE they cannot be told from a trigger's, so an UPDATE must move them)"
                : "";
    }

    // The plan, with each kind of write the transaction made to a table as one of its relations: a DELETE that cascades to
    // payments deletes from payments, whatever its plan says. Also those writes, which the plan did not show. The statement's
    // own writes as PostgreSQL counts them are the plan's: rows an INSERT routes to a partition, and a MERGE's actions its
    // WHEN clauses name, stand as the plan's writes on that partition; so do the deletes and inserts of an UPDATE moving rows
    // between partitions of the table it updates, where they add up to its own count. Anything else (a trigger's delete from the
    // table the statement updates, its insert into a sibling partition) is a write the plan did not show.
    private static (PlanFacts Plan, IReadOnlyList<RelationAccess> Unplanned) WithTablesWritten(
        PlanFacts plan, StatementText statement, long? ownRows, IReadOnlyList<TableWrites> tables)
    {
        var planned = plan.Relations.Where(r => r.Access == AccessLevel.Write).Select(r => (r.Relation, Operations: Operations(r, statement).ToList())).ToList();

        // Row movement: an UPDATE of a partitioned table deletes each moved row from one partition and inserts it into
        // another, and PostgreSQL counts the row once among the statement's own. Its partitions' inserts and deletes are the
        // move only when the sums hold exactly: as many inserted as deleted, and inserted plus updated equal to the statement's
        // own count (a trigger that deletes and inserts as many rows there breaks the second). Only for an UPDATE, the plan's
        // one writer (its count is this table's): a MERGE may insert or delete too, and one that inserts could not tell a move
        // from its insert and a trigger's delete (PostgreSQL 15.0 to 15.2 also counted a MERGE's moved row twice). And not
        // where a partition of the table keeps no such counts (a foreign table): rows changed there are in the statement's
        // count and no table's, room for a trigger's.
        bool Moved(RelationName parent)
        {
            if (ownRows is not { } own || statement.Kind != StatementKind.Update || plan.Writers != 1)
            {
                return false;
            }

            var partitions = tables.Where(t => t.Lineage.Partition && t.Lineage.Ancestors.Contains(parent)).ToList();
            var (inserted, updated, deleted) = (partitions.Sum(t => t.Inserted), partitions.Sum(t => t.Updated), partitions.Sum(t => t.Deleted));
            return !partitions.Any(t => t.UncountedPartitions) && inserted == deleted && inserted + updated == own;
        }

        RelationAccess? AsPlanned(TableWrites table, string operation)
        {
            foreach (var (relation, operations) in planned)
            {
                var own = relation == table.Table || table.Lineage.Ancestors.Contains(relation);
                if (own && operations.Contains(operation))
                {
                    return new RelationAccess(table.Table, AccessLevel.Write, operation);
                }

                if (own && relation != table.Table && table.Lineage.Partition && operation is "insert" or "delete" && operations.Contains("update") && Moved(relation))
                {
                    return new RelationAccess(table.Table, AccessLevel.Write, "update");
                }
            }

            return null;
        }

        var added = new List<RelationAccess>();
        var unplanned = new List<RelationAccess>();
        foreach (var table in tables)
        {
            foreach (var (operation, count) in new[] { ("insert", table.Inserted), ("update", table.Updated), ("delete", table.Deleted) })
            {
                if (count == 0)
                {
                    continue;
                }

                var access = AsPlanned(table, operation);
                if (access is null)
                {
                    access = new RelationAccess(table.Table, AccessLevel.Write, operation);
                    unplanned.Add(access);
                }

                // Each partition written stands in the plan too: a rule may name a partition the plan reaches through its table.
                if (!plan.Relations.Contains(access) && !added.Contains(access))
                {
                    added.Add(access);
                }
            }
        }

        if (added.Count == 0)
        {
            return (plan, unplanned);
        }

        var lineage = new Dictionary<RelationName, RelationLineage>(plan.Lineage);
        foreach (var table in tables.Where(t => t.Lineage.Ancestors.Count > 0))
        {
            lineage.TryAdd(table.Table, table.Lineage);
        }

        return (plan with { Relations = [.. plan.Relations, .. added], Lineage = lineage }, unplanned);
    }

    /// <summary>
    /// The same judgement for a read that ran, by the rows it returned (at least <paramref name="rows"/>: the cursor stops one
    /// past the row cap), before any leaves: the planner's estimate of a read can be steered as a write's can.
    /// </summary>
    public static Decision? EvaluateRead(
        StatementText statement, PlanFacts plan, AgentIdentity identity, string connection, IReadOnlyList<GuardrailRule> rules, long rows, bool enforced = true) =>
        Evaluate(statement, plan with { EstimatedRows = rows }, identity, connection, rules, double.PositiveInfinity) is { } decision
            ? decision with { Reason = $"{decision.Reason} (this read returned {rows} rows or more, more than the planner estimated{(enforced ? ", so none of them were sent" : "")})" }
            : null;

    // The plan says only "merge" for a MERGE, whatever it does: it does what its WHEN clauses name, and a MERGE the text does
    // not show (a WITH query's, on a server that allows one) may do any of them.
    private static readonly string[] AnyMergeAction = ["insert", "update", "delete"];

    private static IEnumerable<string> Operations(RelationAccess access, StatementText statement) =>
        access.Operation != "merge" ? [access.Operation]
        : statement.Kind == StatementKind.Merge ? ["merge", .. statement.Effects.Select(StatementKinds.Name)]
        : ["merge", .. AnyMergeAction];

    // Whether the rule holds on this connection and matches the statement by this plan.
    private static bool Applies(GuardrailRule rule, string connection, StatementText statement, PlanFacts plan, AgentIdentity identity) =>
        (rule.Connection is null || rule.Connection == connection) && Matches(rule.Match, statement, plan, identity);

    private static bool Matches(GuardrailMatch match, StatementText statement, PlanFacts plan, AgentIdentity identity)
    {
        var rows = plan.Writes ? plan.EstimatedWriteRows : plan.EstimatedRows;
        return (match.Kinds.Count == 0 || match.Kinds.Contains(statement.Kind) || statement.Effects.Any(match.Kinds.Contains))
            // Tables and operations hold on one relation: "updates of payments", not an update of orders whose trigger inserts
            // into payments.
            && ((match.Tables.Count == 0 && match.Operations.Count == 0) || plan.Relations.Any(r =>
                (match.Tables.Count == 0 || plan.SelfAndAncestors(r.Relation).Any(match.Tables.Contains))
                && (match.Operations.Count == 0 || Operations(r, statement).Any(o => match.Operations.Contains(o, StringComparer.Ordinal)))))
            && (match.WithoutWhere is null || match.WithoutWhere == (statement.WritesWithoutWhere || BuiltInGuards.WritesEveryRow(statement, plan)))
            && (match.MinRows is null || rows >= match.MinRows)
            && (match.Functions.Count == 0 || plan.AllFunctions.Any(f => match.Functions.Contains(f.Name, StringComparer.Ordinal) || match.Functions.Contains(f.ToString(), StringComparer.Ordinal)))
            && (match.Agents.Count == 0 || match.Agents.Contains(identity.Agent, StringComparer.Ordinal))
            && (match.Groups.Count == 0 || identity.Groups.Any(g => match.Groups.Contains(g, StringComparer.Ordinal)))
            && (match.Delegated is null || match.Delegated == (identity.DelegatedBy is not null))
            && (match.DelegatedBy.Count == 0 || (identity.DelegatedBy is { } human && match.DelegatedBy.Contains(human, StringComparer.Ordinal)))
            && (match.DelegatorGroups.Count == 0 || identity.DelegatorGroups.Any(g => match.DelegatorGroups.Contains(g, StringComparer.Ordinal)));
    }
}
