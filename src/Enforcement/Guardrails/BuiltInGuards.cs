using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Pipeline;

namespace Gatehouse.Enforcement.Guardrails;

/// <summary>Guards that hold whatever the grants say, judged on the classification rather than on the text.</summary>
public static class BuiltInGuards
{
    /// <summary>Null when the statement passes; otherwise the refusal.</summary>
    public static Decision? Check(StatementText statement) => statement switch
    {
        { Kind: StatementKind.Update or StatementKind.Delete, HasWhere: false } =>
            Decision.Deny("guard.unbounded_write", $"{statement.Keyword} without a WHERE clause would change every row of the table; add a WHERE clause that names the rows"),
        { UnboundedMergeAction: { } action } =>
            Decision.Deny("guard.unbounded_write", $"this MERGE's WHEN NOT MATCHED BY SOURCE THEN {action} has no AND condition, so it would change every row of the target that the source does not name; add AND and a condition that names the rows"),
        { UnboundedWithWrite: { } verb } =>
            Decision.Deny("guard.unbounded_write", $"the {verb} in this statement's WITH has no WHERE clause, so it would change every row of its table; add a WHERE clause that names the rows"),
        _ => null,
    };

    /// <summary>As <see cref="Check(StatementText)"/>, by the plan: a WHERE clause PostgreSQL finds always true bounds nothing.</summary>
    public static Decision? Check(StatementText statement, PlanFacts plan) =>
        WritesEveryRow(statement, plan)
            ? Decision.Deny("guard.unbounded_write", $"PostgreSQL plans this {statement.Kind.Name().ToUpperInvariant()} with no condition on {plan.UnfilteredWrites[0]}: its WHERE clause is true of every row, so it would change every row of the table; add a WHERE clause that names the rows")
            : null;

    /// <summary>
    /// An UPDATE or DELETE, the statement's only write, that its plan runs on every row of its table. A write a rule or a
    /// WITH query adds is refused as uncounted instead, with advice of its own.
    /// </summary>
    public static bool WritesEveryRow(StatementText statement, PlanFacts plan) =>
        statement.Kind is StatementKind.Update or StatementKind.Delete && plan.Writers == 1 && plan.UnfilteredWrites.Count > 0;
}
