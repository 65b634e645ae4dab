using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Classification;

/// <summary>What PostgreSQL's plan says a statement touches: relations read and written, functions called, estimated rows.</summary>
/// <param name="EstimatedRows">The planner's estimate of rows the statement returns.</param>
/// <param name="EstimatedWriteRows">The planner's estimate of rows the statement's writes touch (0 when it writes nothing).</param>
public sealed record PlanFacts(IReadOnlyList<RelationAccess> Relations, IReadOnlyList<FunctionCall> Functions, double EstimatedRows, double EstimatedWriteRows = 0)
{
    public bool Writes => Relations.Any(r => r.Access == AccessLevel.Write);

    /// <summary>How many parts of the plan write (ModifyTable nodes): more than one when a WITH query writes too.</summary>
    public int Writers { get; init; }

    /// <summary>
    /// What the plan's writing parts do (insert, update, delete, merge), each once. A rewrite rule can make a statement do
    /// another thing than its verb says, and PostgreSQL then reports it with its verb and no rows.
    /// </summary>
    public IReadOnlyList<string> WriteOperations { get; init; } = [];

    /// <summary>
    /// The tables a MERGE or an INSERT ... ON CONFLICT DO UPDATE writes. Their actions' conditions and SET lists read the
    /// target row, which PostgreSQL fetches again by ctid, and EXPLAIN prints none of that: any of its columns may be used.
    /// </summary>
    public IReadOnlyList<RelationName> UnprintedTargetReads { get; init; } = [];

    /// <summary>
    /// Tables an UPDATE or DELETE changes every row of, by its plan: its condition, if it has one, is always true (WHERE true,
    /// WHERE 1 = 1), so the planner scans the whole table with no filter. What the text's missing WHERE cannot show.
    /// </summary>
    public IReadOnlyList<RelationName> UnfilteredWrites { get; init; } = [];

    /// <summary>
    /// Every function the statement itself names, as its parse tree does (built-ins included), for guardrails that match on
    /// functions: the plan prints only what the planner kept, and <c>md5('x')</c> plans as its result.
    /// </summary>
    public IReadOnlyList<FunctionCall> Called { get; init; } = [];

    /// <summary>The functions a guardrail matches on: those the plan prints and those the statement names.</summary>
    public IEnumerable<FunctionCall> AllFunctions => Called.Count == 0 ? Functions : Functions.Concat(Called);

    /// <summary>The planner's total cost estimate for the statement.</summary>
    public double EstimatedCost { get; init; }

    /// <summary>Columns of scanned relations that any expression in the plan uses (outputs, filters, join and sort keys, subplans).</summary>
    public IReadOnlyList<ColumnUse> Columns { get; init; } = [];

    /// <summary>The result columns as the top plan node computes them (EXPLAIN VERBOSE's Output): the lineage masking reads.</summary>
    public IReadOnlyList<string> Outputs { get; init; } = [];

    /// <summary>
    /// What each scanned partition or inheritance child descends from. A plan scans the partitions of a partitioned table,
    /// never the table itself, so a tag, guardrail or grant on the table is matched through this.
    /// </summary>
    public IReadOnlyDictionary<RelationName, RelationLineage> Lineage { get; init; } = new Dictionary<RelationName, RelationLineage>();

    /// <summary>The relation, then each table it is a partition or inheritance child of, nearest first.</summary>
    public IEnumerable<RelationName> SelfAndAncestors(RelationName relation) =>
        Lineage.TryGetValue(relation, out var lineage) ? [relation, .. lineage.Ancestors] : [relation];
}

/// <summary>The tables a relation descends from (nearest first), and whether it is a partition (its rows are exactly its parent's).</summary>
public sealed record RelationLineage(IReadOnlyList<RelationName> Ancestors, bool Partition);

/// <summary>One relation in a plan and the access the plan needs on it (a ModifyTable target needs write).</summary>
public sealed record RelationAccess(RelationName Relation, AccessLevel Access, string Operation);
