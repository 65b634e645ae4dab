namespace Gatehouse.Enforcement.Classification;

/// <summary>One statement cut out of the submitted text, with its kind and the keyword that decided it.</summary>
public sealed record StatementText(string Sql, StatementKind Kind, string Keyword)
{
    /// <summary>For EXPLAIN: the statement being explained.</summary>
    public StatementText? Inner { get; init; }

    /// <summary>For EXPLAIN: whether ANALYZE makes it run the inner statement.</summary>
    public bool Analyze { get; init; }

    /// <summary>For UPDATE and DELETE: whether the statement itself (not a CTE inside it) has a WHERE clause.</summary>
    public bool HasWhere { get; init; }

    /// <summary>
    /// UPDATE or DELETE when a WITH query of the statement is one without a WHERE clause of its own
    /// (<c>WITH d AS (DELETE FROM t RETURNING 1) SELECT ...</c>); null otherwise.
    /// </summary>
    public string? UnboundedWithWrite { get; init; }

    /// <summary>
    /// The writes the statement takes beyond its own kind: those a MERGE's WHEN clauses name (THEN INSERT, UPDATE or
    /// DELETE), and the UPDATE of an INSERT's ON CONFLICT DO UPDATE. Empty for other statements.
    /// </summary>
    public IReadOnlyList<StatementKind> Effects { get; init; } = [];

    /// <summary>
    /// For MERGE: UPDATE or DELETE when a <c>WHEN NOT MATCHED BY SOURCE</c> clause takes that action with no AND condition,
    /// so on every row of the target the source does not name; null otherwise.
    /// </summary>
    public string? UnboundedMergeAction { get; init; }

    /// <summary>
    /// Whether an UPDATE or DELETE in it, the statement itself or a WITH query, has no WHERE clause of its own, or a MERGE
    /// updates or deletes every target row its source does not name.
    /// </summary>
    public bool WritesWithoutWhere =>
        (Kind is StatementKind.Update or StatementKind.Delete && !HasWhere) || UnboundedWithWrite is not null || UnboundedMergeAction is not null;

    /// <summary>The tokens without comments or layout, unquoted words in lower case: equal for statements PostgreSQL reads alike.</summary>
    public string Normalized { get; init; } = Sql;
}
