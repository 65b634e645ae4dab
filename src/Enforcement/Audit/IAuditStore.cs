namespace Gatehouse.Enforcement.Audit;

/// <summary>Durable storage for audit records. A call starts only after its record is stored.</summary>
public interface IAuditStore
{
    /// <summary>Stores the record of a call that is starting; throws if it cannot be made durable.</summary>
    ValueTask BeginAsync(AuditRecord record, CancellationToken cancellationToken);

    /// <summary>Stores the final state of a call started with <see cref="BeginAsync"/>.</summary>
    ValueTask CompleteAsync(AuditRecord record, CancellationToken cancellationToken);

    ValueTask<AuditRecord?> GetAsync(string id, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<AuditRecord>> ListAsync(AuditQuery query, CancellationToken cancellationToken);
}

/// <summary>
/// The audit log as admins use it: sessions, tamper checks and retention, on top of recording. Implemented by the embedded
/// SQLite store and by the PostgreSQL store that several gateway instances share; one contract test suite covers both.
/// </summary>
public interface IAuditLog : IAuditStore
{
    /// <summary>One session's calls (an MCP session, or a stdio process's lifetime), oldest first.</summary>
    Task<IReadOnlyList<AuditRecord>> SessionAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>Recent sessions, newest first: who, when, how many calls and refusals.</summary>
    Task<IReadOnlyList<SessionSummary>> SessionsAsync(string? agent, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Retention: removes records finished before the cut and their chain links, in one transaction, and leaves a checkpoint
    /// signed with <paramref name="sign"/> where the chain now starts, so what remains still verifies. Null when nothing was due.
    /// </summary>
    Task<ChainCheckpoint?> PurgeAsync(RetentionCut cut, Func<string, string> sign, CancellationToken cancellationToken);

    /// <summary>Walks the chain (from the latest purge checkpoint, if any) and compares it with the records: every break, each named.</summary>
    Task<ChainReport> VerifyChainAsync(Func<string, string, bool>? signatureValid, CancellationToken cancellationToken);

    /// <summary>Per agent: first and last call, calls and refusals.</summary>
    Task<IReadOnlyList<AgentActivity>> AgentActivityAsync(CancellationToken cancellationToken);

    /// <summary>Every record from <paramref name="since"/> up to <paramref name="until"/>, oldest first, read in pages (for export).</summary>
    IAsyncEnumerable<AuditRecord> ExportAsync(DateTimeOffset? since, DateTimeOffset? until, CancellationToken cancellationToken);
}

/// <summary>What a purge removes: records older than <see cref="Before"/>, and the oldest beyond the newest <see cref="KeepNewest"/>.</summary>
public sealed record RetentionCut(DateTimeOffset? Before, int? KeepNewest = null)
{
    /// <summary>
    /// Records finished longer ago than this go, by the store's clock: a purging process whose clock runs fast (an admin's
    /// laptop, one instance of several) would otherwise delete records the policy keeps.
    /// </summary>
    public TimeSpan? OlderThan { get; init; }
}

/// <summary>Filters for listing audit records, newest first, a page at a time.</summary>
/// <param name="Table">Calls whose classification names this relation (schema.table, or a table name).</param>
/// <param name="Text">Calls whose SQL, rule or reason contains this text (case-insensitive).</param>
public sealed record AuditQuery(
    string? Agent = null,
    DateTimeOffset? Since = null,
    Verdict? Decision = null,
    int Limit = 100,
    DateTimeOffset? Until = null,
    string? Connection = null,
    string? Table = null,
    string? Text = null,
    int Offset = 0,
    string? Tool = null);
