using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Identity;

namespace Gatehouse.Enforcement.Execution;

/// <summary>Runs one authorized statement under the gateway's own credential.</summary>
public interface IQueryExecutor
{
    /// <param name="beforeCommit">For writes: called with the result while the transaction is still open; if it throws, the
    /// write is rolled back. The pipeline records the call there, so a write never outlives a lost record.</param>
    ValueTask<QueryResult> ExecuteAsync(ExecutionRequest request, Func<QueryResult, ValueTask>? beforeCommit, CancellationToken cancellationToken);
}

/// <summary>An authorized statement with the bounds it must run under.</summary>
/// <param name="Parameters">Positional values for $1, $2…, sent as untyped text so PostgreSQL infers their types.</param>
/// <param name="Cursor">Fetch through a cursor up to the row cap (SELECT only; a cursor cannot wrap EXPLAIN or DML).</param>
public sealed record ExecutionRequest(
    string Connection,
    string Sql,
    IReadOnlyList<string?> Parameters,
    bool ReadOnly,
    bool Cursor,
    int MaxRows,
    int MaxBytes,
    TimeSpan StatementTimeout,
    AgentIdentity Caller,
    string CallId)
{
    /// <summary>The role to run as: a strict-mode masking profile (its schema is the search_path) or a group's mapped role.</summary>
    public SessionRole? Role { get; init; }

    /// <summary>Run a write only to measure it: its transaction is always rolled back, and the result says how many rows it touched.</summary>
    public bool DryRun { get; init; }

    /// <summary>Why the result stops at <see cref="MaxRows"/> when that is not the policy's row limit (a quota's), for the caller.</summary>
    public string? RowCapReason { get; init; }

    /// <summary>Why the result stops at <see cref="MaxBytes"/> when that is not the policy's byte limit.</summary>
    public string? ByteCapReason { get; init; }
}

/// <summary>Rows as they leave the database: values are null, bool, long, decimal, double, string, or JSON text for json columns.</summary>
public sealed record QueryResult(
    IReadOnlyList<ResultColumn> Columns,
    IReadOnlyList<object?[]> Rows,
    bool Truncated,
    string? TruncatedBecause,
    long? AffectedRows)
{
    /// <summary>About how many bytes the rows hold, as the executor counted them for the byte cap (quotas count these).</summary>
    public long Bytes { get; init; }

    /// <summary>
    /// For a write: every row its transaction inserted, updated or deleted in the database's tables, its triggers' and
    /// foreign-key cascades' included, as PostgreSQL counted them (null where not counted). <see cref="AffectedRows"/> is the
    /// statement's own count.
    /// </summary>
    public long? RowsTouched { get; init; }

    /// <summary>
    /// For a write: each table its transaction wrote rows to, with how many of each kind, its triggers' and foreign-key
    /// cascades' included (empty where not counted).
    /// </summary>
    public IReadOnlyList<TableWrites> TablesWritten { get; init; } = [];

    /// <summary>What a write is held to: the rows it touched in all, never fewer than the statement's own; null when either count is missing.</summary>
    public long? WriteRows => AffectedRows is { } own && RowsTouched is { } touched ? Math.Max(own, touched) : null;

    /// <summary>How many values of each sensitive kind the detectors masked.</summary>
    public IReadOnlyDictionary<string, int> Masked { get; init; } = new Dictionary<string, int>();

    /// <summary>For each output column the detectors touched, the classes they masked in it.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> MaskedColumns { get; init; } = new Dictionary<string, IReadOnlyList<string>>();
}

/// <summary>The rows a write inserted, updated and deleted in one table, and the tables that table descends from (nearest first).</summary>
public sealed record TableWrites(RelationName Table, long Inserted, long Updated, long Deleted, RelationLineage Lineage)
{
    /// <summary>
    /// A partition whose tree has a leaf PostgreSQL keeps no such counts for (a foreign table, a table of another access
    /// method): rows a statement changes there are in its own count and in no table's, so its counts cannot be accounted for.
    /// </summary>
    public bool UncountedPartitions { get; init; }
}

/// <summary>A result column and its PostgreSQL type name.</summary>
public sealed record ResultColumn(string Name, string Type);
