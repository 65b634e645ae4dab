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

    /// <summary>How many writes of a finished record succeed before the rest fail (a write's outcome, stored before its commit, is one).</summary>
    public int CompletesBeforeFailing { get; set; } = int.MaxValue;

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
        if (FailComplete || CompletesBeforeFailing-- <= 0)
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
    public string? Version { get; set; } = "v1";

    public string? Current(string connection) => Version;

    public FunctionCatalog Functions { get; set; } = new([new FunctionInfo("pg_catalog", "upper", Volatility.Immutable, false, "internal")]);

    /// <summary>Reads that asked for the catalog to be read again.</summary>
    public int CatalogRefreshes { get; private set; }

    public ValueTask<FunctionCatalog> GetAsync(string connection, bool refresh, CancellationToken cancellationToken)
    {
        CatalogRefreshes += refresh ? 1 : 0;
        return ValueTask.FromResult(Functions);
    }

    public int Explains { get; private set; }

    /// <summary>The rows a write reports it touched; null as PostgreSQL reports for a write under a SELECT.</summary>
    public long? WrittenRows { get; set; } = 1;

    public int Executions { get; private set; }

    public PlanFacts Plan { get; set; } = new([new RelationAccess(new RelationName("public", "orders"), AccessLevel.Read, "read")], [], 1);

    public Exception? Failure { get; set; }

    /// <summary>What the statement names before planning, as the double reports it; nothing unless a test says.</summary>
    public StatementReferences References { get; set; } = StatementReferences.None;

    public ValueTask<StatementReferences> ResolveAsync(string connection, string sql, SessionRole? role, CancellationToken cancellationToken) =>
        Failure is null ? ValueTask.FromResult(References) : ValueTask.FromException<StatementReferences>(Failure);

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

        // Its writes have no triggers or cascades: every row they touch is the statement's own.
        var result = new QueryResult([new ResultColumn("id", "integer")], [[1L]], false, null, request.ReadOnly ? null : WrittenRows)
        {
            RowsTouched = request.ReadOnly ? null : WrittenRows,
        };
        // A dry run is always rolled back, as the real executor does.
        if (!request.ReadOnly && !request.DryRun)
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

/// <summary>
/// No access requests or grants but those filed through it; its requests (filing and listing, or listing alone) and time-boxed
/// grants can be made to fail as a store that does not answer.
/// </summary>
internal sealed class NoApprovals : IApprovalStore
{
    public Exception? GrantsFailure { get; set; }

    public Exception? RequestsFailure { get; set; }

    public Exception? ListingFailure { get; set; }

    /// <summary>Runs as a listing begins, before it reads (a test cancels the call there).</summary>
    public Action? Listing { get; set; }

    public List<AccessRequest> Filed { get; } = [];

    public ValueTask<int> CreateAsync(AccessRequest request, int maxPending, CancellationToken cancellationToken)
    {
        if (RequestsFailure is { } failure)
        {
            return ValueTask.FromException<int>(failure);
        }

        var pending = Filed.Count(r => r.Agent == request.Agent && r.Status == AccessRequestStatus.Pending);
        if (pending < maxPending)
        {
            Filed.Add(request);
        }

        return ValueTask.FromResult(pending);
    }

    public ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult<AccessRequest?>(null);

    public ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken)
    {
        Listing?.Invoke();
        cancellationToken.ThrowIfCancellationRequested();
        return (RequestsFailure ?? ListingFailure) is { } failure ? ValueTask.FromException<IReadOnlyList<AccessRequest>>(failure) : ValueTask.FromResult<IReadOnlyList<AccessRequest>>(Filed);
    }

    public async ValueTask<IReadOnlyList<AccessRequest>> ListOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await ListAsync(null, now, cancellationToken)).Where(r => r.Agent == agent).OrderByDescending(r => r.CreatedAt).Take(limit).ToList();

    public ValueTask<int> CountPendingAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Filed.Count(r => r.Agent == agent && r.Status == AccessRequestStatus.Pending));

    public ValueTask<bool> DecideAsync(string id, ApprovalVote vote, int required, TimeSpan maxGrant, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

    public ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

    public ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        GrantsFailure is { } failure ? ValueTask.FromException<IReadOnlyList<Grant>>(failure) : ValueTask.FromResult<IReadOnlyList<Grant>>([]);
}

/// <summary>
/// Statement approvals in memory, for one call at a time. A filed request can be approved at once, as if an approver were
/// waiting for it; any operation can be made to fail a number of times as a store that does not answer.
/// </summary>
internal sealed class MemoryStatementApprovals : IStatementApprovalStore
{
    private readonly Dictionary<string, StatementApproval> _requests = [];

    /// <summary>How many more times each operation, by its method name, fails.</summary>
    public Dictionary<string, int> Failures { get; } = [];

    public bool ApproveOnFiling { get; set; }

    /// <summary>What a request is as it is filed, when something else (another call, an approver) moves it on at once.</summary>
    public Func<StatementApproval, StatementApproval>? FiledAs { get; set; }

    /// <summary>Approves every pending request, as an approver would.</summary>
    public void ApproveAll()
    {
        foreach (var (id, request) in _requests.Where(r => r.Value.Status == StatementApprovalStatus.Pending).ToList())
        {
            _requests[id] = request with { Status = StatementApprovalStatus.Approved, Votes = [new ApprovalVote("carol", true, DateTimeOffset.UtcNow, null)] };
        }
    }

    /// <summary>Runs as a request is filed, given it: something that happens while its call waits.</summary>
    public Action<StatementApproval>? OnFiling { get; set; }

    public IReadOnlyCollection<StatementApproval> Requests => _requests.Values;

    public ValueTask<StatementApproval?> FindLiveAsync(string agent, string? delegatedBy, string connection, string statementHash, string parametersHash, DateTimeOffset decidedSince, DateTimeOffset now, CancellationToken cancellationToken)
    {
        FailIfAsked(nameof(FindLiveAsync));
        return ValueTask.FromResult(_requests.Values.FirstOrDefault(r =>
            r.Agent == agent && r.DelegatedBy == delegatedBy && r.Connection == connection && r.StatementHash == statementHash && r.ParametersHash == parametersHash
            && (r.Status is StatementApprovalStatus.Pending or StatementApprovalStatus.Approved or StatementApprovalStatus.Running || r.KeptResult is not null
                || (r.Status is StatementApprovalStatus.Denied or StatementApprovalStatus.Cancelled && r.CreatedAt > decidedSince))));
    }

    public ValueTask<StatementFiling> CreateStatementAsync(StatementApproval request, int maxPending, DateTimeOffset decidedSince, CancellationToken cancellationToken)
    {
        FailIfAsked(nameof(CreateStatementAsync));
        OnFiling?.Invoke(request);
        if (_requests.Values.FirstOrDefault(r =>
            r.Agent == request.Agent && r.DelegatedBy == request.DelegatedBy && r.Connection == request.Connection && r.StatementHash == request.StatementHash
            && r.ParametersHash == request.ParametersHash
            && (r.Status is StatementApprovalStatus.Pending or StatementApprovalStatus.Approved or StatementApprovalStatus.Running
                || (r.Status is StatementApprovalStatus.Denied or StatementApprovalStatus.Cancelled && r.CreatedAt > decidedSince))) is { } same)
        {
            return ValueTask.FromResult(new StatementFiling(0, same));
        }

        var pending = _requests.Values.Count(r => r.Agent == request.Agent && r.Status == StatementApprovalStatus.Pending);
        if (pending < maxPending)
        {
            _requests[request.Id] = FiledAs?.Invoke(request) ?? (ApproveOnFiling
                ? request with { Status = StatementApprovalStatus.Approved, Votes = [new ApprovalVote("alice", true, DateTimeOffset.UtcNow, null)] }
                : request);
        }

        return ValueTask.FromResult(new StatementFiling(pending));
    }

    public ValueTask<StatementApproval?> GetStatementAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        FailIfAsked(nameof(GetStatementAsync));
        return ValueTask.FromResult(_requests.GetValueOrDefault(id));
    }

    public ValueTask<IReadOnlyList<StatementApproval>> ListStatementsAsync(bool all, DateTimeOffset now, CancellationToken cancellationToken)
    {
        FailIfAsked(nameof(ListStatementsAsync));
        return ValueTask.FromResult<IReadOnlyList<StatementApproval>>([.. _requests.Values]);
    }

    public ValueTask<int> CountPendingStatementsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult(_requests.Values.Count(r => r.Agent == agent && r.Status == StatementApprovalStatus.Pending));

    public ValueTask<IReadOnlyList<StatementApproval>> ListStatementsOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken)
    {
        FailIfAsked(nameof(ListStatementsOfAgentAsync));
        return ValueTask.FromResult<IReadOnlyList<StatementApproval>>([.. _requests.Values.Where(r => r.Agent == agent).OrderByDescending(r => r.CreatedAt).Take(limit)]);
    }

    public ValueTask<StatementApproval?> VoteAsync(string id, ApprovalVote vote, int required, TimeSpan approvalLifetime, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult<StatementApproval?>(null);

    public ValueTask<(StatementApproval? Request, bool Reopened)> RequireAsync(string id, int required, DateTimeOffset reopenedUntil, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult<(StatementApproval?, bool)>((_requests.GetValueOrDefault(id), false));

    public ValueTask<bool> CancelAsync(string id, string by, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

    public ValueTask<bool> ClaimAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        FailIfAsked(nameof(ClaimAsync));
        return ValueTask.FromResult(Move(id, StatementApprovalStatus.Approved, r => r with { Status = StatementApprovalStatus.Running }));
    }

    public ValueTask FinishRunAsync(string id, string? result, DateTimeOffset until, DateTimeOffset now, CancellationToken cancellationToken)
    {
        FailIfAsked(nameof(FinishRunAsync));
        Move(id, StatementApprovalStatus.Running, r => r with { Status = StatementApprovalStatus.Used, KeptResult = result, KeptUntil = until });
        return ValueTask.CompletedTask;
    }

    public ValueTask SetReviewAsync(string id, string review, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<string?> TakeResultAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        FailIfAsked(nameof(TakeResultAsync));
        var kept = _requests[id].KeptResult;
        _requests[id] = _requests[id] with { KeptResult = null };
        return ValueTask.FromResult(kept);
    }

    private bool Move(string id, StatementApprovalStatus from, Func<StatementApproval, StatementApproval> change)
    {
        if (_requests.GetValueOrDefault(id) is not { } request || request.Status != from)
        {
            return false;
        }

        _requests[id] = change(request);
        return true;
    }

    private void FailIfAsked(string operation)
    {
        if (Failures.GetValueOrDefault(operation) > 0)
        {
            Failures[operation]--;
            throw new StoreDown();
        }
    }
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
