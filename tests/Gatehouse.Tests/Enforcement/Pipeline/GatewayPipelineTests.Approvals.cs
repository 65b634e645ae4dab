using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Pipeline;

/// <summary>A statement sent to a human while the state store that keeps its approval stops answering.</summary>
public sealed partial class GatewayPipelineTests
{
    private const string OrdersByHand = """
        guardrails:
          - id: orders-by-hand
            match: { tables: [public.orders] }
            outcome: require_approval
            message: Orders are read with a person's approval
        approvals:
          approvers: [alice]
          wait: 5s
        """;

    private Task<CallOutcome> QueryWithApproval() =>
        Pipeline(Version(AnalystReads, OrdersByHand)).QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "select * from orders", [], null), CancellationToken.None).AsTask();

    // The statement is approved as soon as it is filed, and the store fails the operation once.
    private Task<CallOutcome> QueryApprovedWhileFailing(string operation)
    {
        _statements.ApproveOnFiling = true;
        _statements.Failures[operation] = 1;
        return QueryWithApproval();
    }

    [Theory]
    [InlineData(nameof(MemoryStatementApprovals.FindLiveAsync), "look up this statement's approval request")]
    [InlineData(nameof(MemoryStatementApprovals.CreateStatementAsync), "file this statement's approval request")]
    [InlineData(nameof(MemoryStatementApprovals.ClaimAsync), "claim this statement's approval")]
    public async Task When_the_store_keeping_approvals_does_not_answer_the_call_is_refused_saying_so_and_nothing_runs(string operation, string what)
    {
        var outcome = await QueryApprovedWhileFailing(operation);
        AssertStateUnavailable(outcome, what, planned: true);
    }

    [Theory]
    [InlineData(StatementApprovalStatus.Running, "approval.running", "is running now")]
    [InlineData(StatementApprovalStatus.Used, "approval.used", "has been run by another call")]
    public async Task A_call_whose_approval_another_call_took_while_it_waited_says_so_not_pending(StatementApprovalStatus taken, string rule, string says)
    {
        _statements.FiledAs = r => r with { Status = taken, Votes = [new ApprovalVote("alice", true, DateTimeOffset.UtcNow, null)] };

        var outcome = await QueryWithApproval();

        Assert.Equal(rule, outcome.Decision.Rule);
        Assert.Contains(says, outcome.Decision.Reason, StringComparison.Ordinal);
        Assert.Contains("this call ran nothing", outcome.Decision.Reason, StringComparison.Ordinal);
        Assert.Null(outcome.Payload);
        Assert.Equal(0, _database.Executions);
    }

    [Fact]
    public async Task An_agent_with_twenty_statements_waiting_is_refused_another_and_nothing_is_filed_or_run()
    {
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < GatewayPipeline.MaxPendingRequests; i++)
        {
            var sql = $"delete from orders where id = {i}";
            await _statements.CreateStatementAsync(
                new StatementApproval(StatementApproval.NewId(), "analyst", "analyst", "dev", "shop", StatementApproval.Hash(sql), StatementApproval.Hash("[]"), sql, null, "delete", "orders-by-hand", "by hand", 1, StatementApprovalStatus.Pending, now, now.AddHours(1)),
                int.MaxValue,
                DateTimeOffset.UnixEpoch, CancellationToken.None);
        }

        var outcome = await QueryWithApproval();

        Assert.Equal("approval.too_many_pending", outcome.Decision.Rule);
        Assert.Contains("already has 20 statements waiting for an approver", outcome.Decision.Reason, StringComparison.Ordinal);
        Assert.Equal(GatewayPipeline.MaxPendingRequests, _statements.Requests.Count);
        Assert.Equal(0, _database.Executions);
        Assert.Equal(Verdict.Denied, _audit.Completed[outcome.AuditId!].Decision);
    }

    [Fact]
    public async Task A_poll_the_store_misses_does_not_end_the_wait_and_the_approval_is_picked_up_at_the_next()
    {
        var outcome = await QueryApprovedWhileFailing(nameof(MemoryStatementApprovals.GetStatementAsync));
        Assert.Equal("approval.approved", outcome.Decision.Rule);
        Assert.Equal(1, _database.Executions);
        Assert.Equal(0, _statements.Failures[nameof(MemoryStatementApprovals.GetStatementAsync)]);
        Assert.Equal(StatementApprovalStatus.Used, Assert.Single(_statements.Requests).Status);
    }

    [Fact]
    public async Task A_call_whose_statement_another_call_filed_at_the_same_moment_waits_on_that_request_and_files_none()
    {
        StatementApproval? twin = null;
        _statements.OnFiling = filing =>
        {
            // The other call got there first, and an approver approved its request.
            _statements.OnFiling = null;
            _statements.ApproveOnFiling = true;
            twin = filing with { Id = StatementApproval.NewId() };
            _ = _statements.CreateStatementAsync(twin, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        };

        var outcome = await QueryWithApproval();

        Assert.Equal("approval.approved", outcome.Decision.Rule);
        Assert.Equal(1, _database.Executions);
        var request = Assert.Single(_statements.Requests);
        Assert.Equal((twin!.Id, StatementApprovalStatus.Used), (request.Id, request.Status));
        Assert.Contains(twin.Id, outcome.Decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_call_whose_statement_another_call_filed_and_an_approver_denied_meanwhile_reports_that_denial_and_files_none()
    {
        _statements.OnFiling = filing =>
        {
            _statements.OnFiling = null;
            _statements.FiledAs = r => r with { Status = StatementApprovalStatus.Denied, Votes = [new ApprovalVote("alice", false, DateTimeOffset.UtcNow, "no")] };
            _ = _statements.CreateStatementAsync(filing with { Id = StatementApproval.NewId() }, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        };

        var outcome = await QueryWithApproval();

        Assert.Equal("approval.denied", outcome.Decision.Rule);
        Assert.Equal(StatementApprovalStatus.Denied, Assert.Single(_statements.Requests).Status);
        Assert.Equal(0, _database.Executions);
    }

    [Fact]
    public async Task A_catalog_change_while_the_call_waits_for_approval_has_the_statement_judged_again_before_it_runs()
    {
        // A view redefined, a function replaced: the plan the approvers were shown may no longer be what runs.
        _statements.ApproveOnFiling = true;
        _statements.OnFiling = _ => _database.Version = "v2";
        var outcome = await QueryWithApproval();
        Assert.Equal("approval.catalog_changed", outcome.Decision.Rule);
        Assert.Equal(0, _database.Executions);
        Assert.Equal(StatementApprovalStatus.Approved, Assert.Single(_statements.Requests).Status);

        // Called again, it is planned against the catalog as it is, and runs on the same approval.
        _statements.OnFiling = null;
        var again = await QueryWithApproval();
        Assert.Equal("approval.approved", again.Decision.Rule);
        Assert.Equal((2, 1), (_database.Explains, _database.Executions));
    }

    [Fact]
    public async Task An_approved_run_its_quota_has_nothing_left_for_is_refused_and_its_approval_stays_unspent()
    {
        // While the call waits for its approval, another statement of the agent takes all that is left of its rows quota
        // (its row cap is above the quota's 5, so it holds all 5).
        var pipeline = Pipeline(Version(AnalystReads, OrdersByHand + "\nquotas:\n  agents:\n    analyst: { rows: 5 }"));
        Task<CallOutcome> Ask(string sql) =>
            pipeline.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", sql, [], null), CancellationToken.None).AsTask();
        var reading = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        _database.Hold = async _ =>
        {
            reading.TrySetResult();
            await release.Task;
        };
        _statements.ApproveOnFiling = true;
        Task<CallOutcome>? other = null;
        var otherHolds = false;
        _statements.OnFiling = _ =>
        {
            _statements.OnFiling = null;
            other = Ask("select * from orders where id = 2");
            otherHolds = reading.Task.Wait(TimeSpan.FromSeconds(10));
        };

        var outcome = await Ask("select * from orders where id = 1");
        release.SetResult();
        Assert.True(otherHolds, "the other statement did not reach the database while this call waited");
        Assert.True((await other!).Decision.IsAllowed);

        Assert.Equal("quota.rows", outcome.Decision.Rule);
        Assert.Contains("stays approved", outcome.Decision.Reason, StringComparison.Ordinal);
        Assert.Equal(1, _database.Executions);
        var mine = Assert.Single(_statements.Requests, r => r.Sql.EndsWith("id = 1", StringComparison.Ordinal));
        Assert.Equal(StatementApprovalStatus.Approved, mine.Status);
    }

    [Fact]
    public async Task An_approved_run_the_store_cannot_mark_used_still_returns_its_result_and_its_approval_cannot_run_again()
    {
        var outcome = await QueryApprovedWhileFailing(nameof(MemoryStatementApprovals.FinishRunAsync));
        Assert.Equal("approval.approved", outcome.Decision.Rule);
        Assert.NotNull(outcome.Payload);
        Assert.Equal(Verdict.Allowed, _audit.Completed[outcome.AuditId!].Decision);

        // Still marked running, as the store last heard: the same statement is not run a second time on it.
        Assert.Equal(StatementApprovalStatus.Running, Assert.Single(_statements.Requests).Status);
        Assert.Equal("approval.running", (await QueryWithApproval()).Decision.Rule);
        Assert.Equal(1, _database.Executions);
    }

    [Fact]
    public async Task An_access_request_nobody_may_decide_is_refused_at_once_rather_than_filed_to_expire()
    {
        // The operator is asked about statements only: named alone, it leaves no one to decide an access request.
        var pipeline = Pipeline(_policy with { Approvals = _policy.Approvals with { Approvers = [ApprovalSettings.Operator] } });
        var request = new AccessRequestInput("shop", ["public.orders"], "read", "monthly report", "1h");

        var outcome = await pipeline.RequestAccessAsync(new CallContext("request_access", Token(), "test", "s1"), request, CancellationToken.None);

        Assert.Equal("request.no_approver", outcome.Decision.Rule);
        Assert.Contains("approvals.approvers names only operator", outcome.Decision.Reason, StringComparison.Ordinal);
        Assert.Empty(_approvals.Filed);
        Assert.Equal(Verdict.Denied, _audit.Completed[outcome.AuditId!].Decision);
    }

    [Fact]
    public async Task When_the_store_cannot_file_an_access_request_the_caller_is_told_so()
    {
        _approvals.RequestsFailure = new StoreDown();
        var request = new AccessRequestInput("shop", ["public.orders"], "read", "monthly report", "1h");
        var outcome = await _pipeline.RequestAccessAsync(new CallContext("request_access", Token(), "test", "s1"), request, CancellationToken.None);
        AssertStateUnavailable(outcome, "file this access request");
    }

    [Theory]
    [InlineData("access requests")]
    [InlineData("statement requests")]
    public async Task An_access_request_filed_before_the_store_stopped_answering_is_reported_filed(string unlisted)
    {
        if (unlisted == "access requests")
        {
            _approvals.ListingFailure = new StoreDown();
        }
        else
        {
            _statements.Failures[nameof(MemoryStatementApprovals.ListStatementsOfAgentAsync)] = 1;
        }

        var request = new AccessRequestInput("shop", ["public.orders"], "read", "monthly report", "1h");
        var outcome = await _pipeline.RequestAccessAsync(new CallContext("request_access", Token(), "test", "s1"), request, CancellationToken.None);

        // Told it is filed, so it does not file the same request again; told why its other requests are not listed.
        Assert.Equal("access.requested", outcome.Decision.Rule);
        var filed = Assert.Single(_approvals.Filed);
        var status = Assert.IsType<RequestStatus>(outcome.Payload);
        Assert.Equal(filed.Id, status.Created!.Id);
        Assert.Empty(status.Access);
        Assert.Contains("could not read this agent's requests", status.NotListed, StringComparison.Ordinal);
        Assert.Equal(Verdict.Allowed, _audit.Completed[outcome.AuditId!].Decision);
    }

    [Fact]
    public async Task An_agent_with_twenty_requests_waiting_is_refused_a_twenty_first_and_the_refusal_is_on_record()
    {
        var request = new AccessRequestInput("shop", ["public.orders"], "read", "monthly report", "1h");
        for (var i = 0; i < GatewayPipeline.MaxPendingRequests; i++)
        {
            Assert.Equal("access.requested", (await _pipeline.RequestAccessAsync(new CallContext("request_access", Token(), "test", "s1"), request, CancellationToken.None)).Decision.Rule);
        }

        var refused = await _pipeline.RequestAccessAsync(new CallContext("request_access", Token(), "test", "s1"), request, CancellationToken.None);

        Assert.Equal("request.too_many_pending", refused.Decision.Rule);
        Assert.Contains("already has 20 access requests waiting for an approver", refused.Decision.Reason, StringComparison.Ordinal);
        Assert.Equal(GatewayPipeline.MaxPendingRequests, _approvals.Filed.Count);
        Assert.Equal(Verdict.Denied, _audit.Completed[refused.AuditId!].Decision);

        // Another agent files as before: the limit is each agent's own.
        Assert.Equal("access.requested", (await _pipeline.RequestAccessAsync(new CallContext("request_access", Token("ops-bot"), "test", "s2"), request, CancellationToken.None)).Decision.Rule);
    }

    // Cancelled once the request is filed, the call is recorded as having filed it, so the audit log shows the request came
    // from it; recorded as cancelled, nothing would.
    [Fact]
    public async Task An_access_request_filed_before_its_call_was_cancelled_is_recorded_filed()
    {
        using var cancel = new CancellationTokenSource();
        _approvals.Listing = cancel.Cancel;
        var request = new AccessRequestInput("shop", ["public.orders"], "read", "monthly report", "1h");

        var outcome = await _pipeline.RequestAccessAsync(new CallContext("request_access", Token(), "test", "s1"), request, cancel.Token);

        Assert.Equal("access.requested", outcome.Decision.Rule);
        var filed = Assert.Single(_approvals.Filed);
        Assert.Equal(filed.Id, Assert.IsType<RequestStatus>(outcome.Payload).Created!.Id);
        Assert.Contains("cancelled", Assert.IsType<RequestStatus>(outcome.Payload).NotListed, StringComparison.Ordinal);
        var record = _audit.Completed[outcome.AuditId!];
        Assert.Equal(Verdict.Allowed, record.Decision);
        Assert.Contains(filed.Id, record.Reason, StringComparison.Ordinal);
    }
}
