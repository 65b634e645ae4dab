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
    public static Decision? Evaluate(StatementText statement, PlanFacts plan, AgentIdentity identity, string connection, IReadOnlyList<GuardrailRule> rules, double maxWriteRows)
    {
        if (plan.Writes && plan.EstimatedWriteRows > maxWriteRows)
        {
            return Decision.Deny("guard.large_write", $"the planner estimates this write touches about {plan.EstimatedWriteRows:0} rows; the limit is {maxWriteRows:0}. Narrow the WHERE clause or split the work");
        }

        Decision? approval = null;
        foreach (var rule in rules)
        {
            if ((rule.Connection is null || rule.Connection == connection) && Matches(rule.Match, statement, plan, identity))
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
    /// limit, or matching a rule the plan did not, it is rolled back.
    /// </summary>
    public static Decision? EvaluateWritten(
        StatementText statement, PlanFacts plan, AgentIdentity identity, string connection, IReadOnlyList<GuardrailRule> rules, double maxWriteRows, long rows, IReadOnlyList<TableWrites> tables)
    {
        if (rows > maxWriteRows)
        {
            return Decision.Deny("guard.large_write", $"this write touched {rows} rows, more than the limit of {maxWriteRows:0} (the planner estimated about {plan.EstimatedWriteRows:0}), so it was rolled back and nothing changed. Narrow the WHERE clause or split the work");
        }

        var (written, unplanned) = WithTablesWritten(plan, tables);
        if (Evaluate(statement, written with { EstimatedWriteRows = rows }, identity, connection, rules, double.PositiveInfinity) is not { } decision)
        {
            return null;
        }

        var why = unplanned.Count == 0 || Evaluate(statement, plan with { EstimatedWriteRows = rows }, identity, connection, rules, double.PositiveInfinity) == decision
            ? "more than the planner estimated"
            : $"and also {string.Join(", ", unplanned.Select(Described))} through its triggers or foreign-key cascades, which its plan does not show";
        return decision with { Reason = $"{decision.Reason} (this write touched {rows} rows, {why}, so it was rolled back and nothing changed)" };

        static string Described(RelationAccess access) => access.Operation switch
        {
            "insert" => $"inserted into {access.Relation}",
            "update" => $"updated {access.Relation}",
            _ => $"deleted from {access.Relation}",
        };
    }

    // The plan, with each kind of write the transaction made to a table as one of its relations: a DELETE that cascades to
    // payments deletes from payments, whatever its plan says. Also those writes, which the plan did not show. The statement's
    // own writes, as PostgreSQL counts them, are the plan's already: an INSERT into a partitioned table inserts into the
    // partition it routes to, an UPDATE that moves a row to another partition deletes and inserts it there, and a MERGE
    // does whatever its WHEN clauses say.
    private static (PlanFacts Plan, IReadOnlyList<RelationAccess> Unplanned) WithTablesWritten(PlanFacts plan, IReadOnlyList<TableWrites> tables)
    {
        bool Planned(TableWrites table, string operation) => plan.Relations.Any(r =>
            r.Access == AccessLevel.Write
            && (r.Relation == table.Table || table.Lineage.Ancestors.Contains(r.Relation))
            && (r.Operation == operation || r.Operation == "merge" || (r.Operation == "update" && operation is "insert" or "delete")));

        var added = new List<RelationAccess>();
        foreach (var table in tables)
        {
            foreach (var (operation, count) in new[] { ("insert", table.Inserted), ("update", table.Updated), ("delete", table.Deleted) })
            {
                if (count > 0 && !Planned(table, operation))
                {
                    added.Add(new RelationAccess(table.Table, AccessLevel.Write, operation));
                }
            }
        }

        if (added.Count == 0)
        {
            return (plan, []);
        }

        var lineage = new Dictionary<RelationName, RelationLineage>(plan.Lineage);
        foreach (var table in tables.Where(t => t.Lineage.Ancestors.Count > 0))
        {
            lineage.TryAdd(table.Table, table.Lineage);
        }

        return (plan with { Relations = [.. plan.Relations, .. added], Lineage = lineage }, added);
    }

    /// <summary>
    /// The same judgement for a read that ran, by the rows it returned (at least <paramref name="rows"/>: the cursor stops one
    /// past the row cap), before any leaves: the planner's estimate of a read can be steered as a write's can.
    /// </summary>
    public static Decision? EvaluateRead(StatementText statement, PlanFacts plan, AgentIdentity identity, string connection, IReadOnlyList<GuardrailRule> rules, long rows) =>
        Evaluate(statement, plan with { EstimatedRows = rows }, identity, connection, rules, double.PositiveInfinity) is { } decision
            ? decision with { Reason = $"{decision.Reason} (this read returned {rows} rows or more, more than the planner estimated, so none of them were sent)" }
            : null;

    // The plan says only "merge" for a MERGE, whatever it does: it does what its WHEN clauses name, and a MERGE the text does
    // not show (a WITH query's, on a server that allows one) may do any of them.
    private static readonly string[] AnyMergeAction = ["insert", "update", "delete"];

    private static IEnumerable<string> Operations(RelationAccess access, StatementText statement) =>
        access.Operation != "merge" ? [access.Operation]
        : statement.Kind == StatementKind.Merge ? ["merge", .. statement.Effects.Select(StatementKinds.Name)]
        : ["merge", .. AnyMergeAction];

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
