using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Pipeline;

/// <summary>An audit store in memory that can be told to fail, to prove the pipeline fails closed.</summary>
internal sealed class MemoryAuditStore : IAuditStore
{
    public List<AuditRecord> Begun { get; } = [];

    public Dictionary<string, AuditRecord> Completed { get; } = [];

    public bool FailBegin { get; set; }

    public bool FailComplete { get; set; }

    public ValueTask BeginAsync(AuditRecord record, CancellationToken cancellationToken)
    {
        if (FailBegin)
        {
            throw new IOException("disk full");
        }

        Begun.Add(record);
        return ValueTask.CompletedTask;
    }

    public ValueTask CompleteAsync(AuditRecord record, CancellationToken cancellationToken)
    {
        if (FailComplete)
        {
            throw new IOException("disk full");
        }

        Completed[record.Id] = record;
        return ValueTask.CompletedTask;
    }

    public ValueTask<AuditRecord?> GetAsync(string id, CancellationToken cancellationToken) => ValueTask.FromResult(Completed.GetValueOrDefault(id));

    public ValueTask<IReadOnlyList<AuditRecord>> ListAsync(AuditQuery query, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<AuditRecord>>(Completed.Values.ToList());
}

/// <summary>A database double that counts what reached it; plan and result are fixed per test.</summary>
internal sealed class RecordingDatabase : IStatementAnalyzer, IQueryExecutor, ISchemaCatalog, IFunctionCatalogSource, ICatalogVersionSource
{
    /// <summary>The catalog version the double reports; null means "not known right now".</summary>
    public string? Version { get; set; }

    public string? Current(string connection) => Version;

    public FunctionCatalog Functions { get; set; } = new([new FunctionInfo("pg_catalog", "upper", Volatility.Immutable, false, "internal")]);

    public int CatalogReads { get; private set; }

    public ValueTask<FunctionCatalog> GetAsync(string connection, bool refresh, CancellationToken cancellationToken)
    {
        CatalogReads++;
        return ValueTask.FromResult(Functions);
    }

    public int Explains { get; private set; }

    public int Executions { get; private set; }

    public PlanFacts Plan { get; set; } = new([new RelationAccess(new RelationName("public", "orders"), AccessLevel.Read, "read")], [], 1);

    public Exception? Failure { get; set; }

    public ValueTask<PlanFacts> ExplainAsync(string connection, string sql, IReadOnlyList<string?> parameters, SessionRole? role, CancellationToken cancellationToken)
    {
        Explains++;
        return Failure is null ? ValueTask.FromResult(Plan) : ValueTask.FromException<PlanFacts>(Failure);
    }

    public int Commits { get; private set; }

    /// <summary>Awaited by each execution before it answers: a statement that takes as long as the test says.</summary>
    public Func<CancellationToken, Task>? Hold { get; set; }

    public async ValueTask<QueryResult> ExecuteAsync(ExecutionRequest request, Func<QueryResult, ValueTask>? beforeCommit, CancellationToken cancellationToken)
    {
        Executions++;
        if (Hold is not null)
        {
            await Hold(cancellationToken);
        }

        var result = new QueryResult([new ResultColumn("id", "integer")], [[1L]], false, null, request.ReadOnly ? null : 1);
        if (!request.ReadOnly)
        {
            if (beforeCommit is not null)
            {
                await beforeCommit(result);
            }

            Commits++;
        }

        return result;
    }

    public List<TableDescription> Tables { get; } = [];

    public ValueTask<IReadOnlyList<TableDescription>> DescribeAsync(string connection, string? schema, string? table, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<TableDescription>>(Tables);
}

/// <summary>No approvals; its time-boxed grants can be made to fail as a store that does not answer.</summary>
internal sealed class NoApprovals : IApprovalStore, IStatementApprovalStore
{
    public Exception? GrantsFailure { get; set; }

    public ValueTask<StatementApproval?> FindLiveAsync(string agent, string connection, string statementHash, string parametersHash, DateTimeOffset decidedSince, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult<StatementApproval?>(null);

    public ValueTask CreateStatementAsync(StatementApproval request, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<StatementApproval?> GetStatementAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult<StatementApproval?>(null);

    public ValueTask<IReadOnlyList<StatementApproval>> ListStatementsAsync(bool all, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<StatementApproval>>([]);

    public ValueTask<StatementApproval?> VoteAsync(string id, ApprovalVote vote, TimeSpan approvalLifetime, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult<StatementApproval?>(null);

    public ValueTask<bool> CancelAsync(string id, string by, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

    public ValueTask<bool> ClaimAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

    public ValueTask FinishRunAsync(string id, string? result, DateTimeOffset until, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask SetReviewAsync(string id, string review, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<string?> TakeResultAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult<string?>(null);

    public ValueTask CreateAsync(AccessRequest request, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult<AccessRequest?>(null);

    public ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<AccessRequest>>([]);

    public ValueTask<bool> DecideAsync(string id, bool approve, string decidedBy, string? note, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

    public ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

    public ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        GrantsFailure is { } failure ? ValueTask.FromException<IReadOnlyList<Grant>>(failure) : ValueTask.FromResult<IReadOnlyList<Grant>>([]);
}

/// <summary>Agent switches in memory, whose reads can be made to fail.</summary>
internal sealed class AgentSwitch : IAgentDirectory
{
    public HashSet<string> Disabled { get; } = [];

    public Exception? Failure { get; set; }

    public ValueTask<string?> FindDisabledAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken) =>
        Failure is { } failure ? ValueTask.FromException<string?>(failure) : ValueTask.FromResult(keys.FirstOrDefault(Disabled.Contains));

    public ValueTask SetDisabledAsync(string agent, bool disabled, string changedBy, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<IReadOnlyList<AgentSetting>> ListAsync(CancellationToken cancellationToken) => ValueTask.FromResult<IReadOnlyList<AgentSetting>>([]);
}

/// <summary>What an ADO.NET provider throws when its server does not answer.</summary>
internal sealed class StoreDown() : System.Data.Common.DbException("Failed to connect to the state store");
