using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Enforcement.Approvals;

/// <summary>
/// An admin whose console hangs up just as an action is stored: the action must not be in force without its record. The
/// stores are real (SQLite); the hang-up is put in between the store's write and its return.
/// </summary>
public sealed class AdminActionHangUpTests
{
    private sealed class HangsUpAfterSwitching(IAgentDirectory directory, CancellationTokenSource hangUp) : IAgentDirectory
    {
        public ValueTask<string?> FindDisabledAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken) => directory.FindDisabledAsync(keys, cancellationToken);

        public async ValueTask SetDisabledAsync(string agent, bool disabled, string changedBy, CancellationToken cancellationToken)
        {
            await directory.SetDisabledAsync(agent, disabled, changedBy, cancellationToken);
            hangUp.Cancel();
            cancellationToken.ThrowIfCancellationRequested();
        }

        public ValueTask<IReadOnlyList<AgentSetting>> ListAsync(CancellationToken cancellationToken) => directory.ListAsync(cancellationToken);
    }

    private static async Task<SqliteStateStore> StoreAsync() =>
        await SqliteStateStore.OpenAsync(Path.Combine(TestDirectory.Create("hang-up"), "state.db"), CancellationToken.None);

    // An approval desk over the store, with analyst's pending access request req_1 and statement request apr_1 for alice to
    // decide.
    private static async Task<ApprovalDesk> DeskAsync(SqliteStateStore store, InterceptedApprovals intercepted, InterceptedStatements? statements = null)
    {
        var approvals = new NotifyingApprovals(intercepted, (IStatementApprovalStore?)statements ?? store, new NotifyingApprovalsTests.Events());
        var policy = ApprovalDeskTests.AnalystPolicy("approvers: [alice]");
        await approvals.CreateAsync(
            new AccessRequest("req_1", "analyst", "analyst", "gatehouse-dev", "shop", [new RelationName("public", "orders")], AccessLevel.Read, "report", TimeSpan.FromHours(1), AccessRequestStatus.Pending, DateTimeOffset.UtcNow),
            20,
            CancellationToken.None);
        var now = DateTimeOffset.UtcNow;
        const string Sql = "delete from orders where id = 7";
        await approvals.CreateStatementAsync(
            new StatementApproval("apr_1", "analyst", "analyst", "https://id.example", "shop", StatementApproval.Hash(Sql), StatementApproval.Hash("[]"), Sql, null, "delete", "orders-by-hand", "by hand", 1, StatementApprovalStatus.Pending, now, now.AddHours(1)),
            20,
            now,
            CancellationToken.None);
        return new ApprovalDesk(new LivePolicy(policy), approvals, store, TimeProvider.System);
    }

    private static async Task AssertApprovedOnRecordAsync(SqliteStateStore store)
    {
        Assert.Equal(AccessRequestStatus.Approved, (await store.GetAsync("req_1", DateTimeOffset.UtcNow, CancellationToken.None))!.Status);
        var record = Assert.Single(await store.ListAsync(new AuditQuery(Tool: "approvals approve"), CancellationToken.None));
        Assert.Equal(("approval.approve", "alice", "req_1"), (record.Rule, record.Agent, record.Classification));
    }

    [Fact]
    public async Task A_decision_stored_as_its_caller_hangs_up_is_recorded()
    {
        var store = await StoreAsync();
        using var hangUp = new CancellationTokenSource();
        var desk = await DeskAsync(store, new InterceptedApprovals(store) { AfterChange = hangUp.Cancel });

        var outcome = await desk.DecideAsync("req_1", "alice", null, approve: true, "for the report", "console", hangUp.Token);

        Assert.True(outcome.Done, outcome.Message);
        await AssertApprovedOnRecordAsync(store);
    }

    [Fact]
    public async Task A_decision_stored_by_a_store_that_then_stops_answering_is_recorded()
    {
        var store = await StoreAsync();
        var intercepted = new InterceptedApprovals(store);
        intercepted.AfterChange = () => intercepted.ReadsFail = true;
        var desk = await DeskAsync(store, intercepted);

        var outcome = await desk.DecideAsync("req_1", "alice", null, approve: true, null, "console", CancellationToken.None);

        Assert.True(outcome.Done, outcome.Message);
        Assert.Contains("Approved req_1: analyst may read public.orders on shop (the state store could not be read back for when the grant ends)", outcome.Message, StringComparison.Ordinal);
        await AssertApprovedOnRecordAsync(store);
    }

    [Fact]
    public async Task A_grant_revoked_as_its_caller_hangs_up_is_recorded()
    {
        var store = await StoreAsync();
        using var hangUp = new CancellationTokenSource();
        var intercepted = new InterceptedApprovals(store);
        var desk = await DeskAsync(store, intercepted);
        await desk.DecideAsync("req_1", "alice", null, approve: true, null, "console", CancellationToken.None);
        intercepted.AfterChange = hangUp.Cancel;

        var outcome = await desk.RevokeAsync("req_1", "alice", "console", hangUp.Token);

        Assert.True(outcome.Done, outcome.Message);
        Assert.Empty(await store.ActiveGrantsAsync("analyst", DateTimeOffset.UtcNow, CancellationToken.None));
        var record = Assert.Single(await store.ListAsync(new AuditQuery(Tool: "approvals revoke"), CancellationToken.None));
        Assert.Equal(("approval.revoke", "alice", "req_1"), (record.Rule, record.Agent, record.Classification));
    }

    [Theory]
    [InlineData(true, "approvals approve", "approval.approve", StatementApprovalStatus.Approved)]
    [InlineData(false, "approvals deny", "approval.deny", StatementApprovalStatus.Denied)]
    public async Task A_vote_on_a_statement_stored_as_its_caller_hangs_up_is_recorded(bool approve, string tool, string rule, StatementApprovalStatus status)
    {
        var store = await StoreAsync();
        using var hangUp = new CancellationTokenSource();
        var desk = await DeskAsync(store, new InterceptedApprovals(store), new InterceptedStatements(store) { AfterChange = hangUp.Cancel });

        var outcome = await desk.DecideAsync("apr_1", "alice", null, approve, null, "console", hangUp.Token);

        Assert.True(outcome.Done, outcome.Message);
        Assert.Equal(status, (await store.GetStatementAsync("apr_1", DateTimeOffset.UtcNow, CancellationToken.None))!.Status);
        var record = Assert.Single(await store.ListAsync(new AuditQuery(Tool: tool), CancellationToken.None));
        Assert.Equal((rule, "alice", "apr_1"), (record.Rule, record.Agent, record.Classification));
    }

    [Fact]
    public async Task A_statement_request_cancelled_as_its_caller_hangs_up_is_recorded()
    {
        var store = await StoreAsync();
        using var hangUp = new CancellationTokenSource();
        var desk = await DeskAsync(store, new InterceptedApprovals(store), new InterceptedStatements(store) { AfterChange = hangUp.Cancel });

        var outcome = await desk.CancelAsync("apr_1", "alice", null, "console", hangUp.Token);

        Assert.True(outcome.Done, outcome.Message);
        Assert.Equal(StatementApprovalStatus.Cancelled, (await store.GetStatementAsync("apr_1", DateTimeOffset.UtcNow, CancellationToken.None))!.Status);
        var record = Assert.Single(await store.ListAsync(new AuditQuery(Tool: "approvals cancel"), CancellationToken.None));
        Assert.Equal(("approval.cancel", "alice", "apr_1"), (record.Rule, record.Agent, record.Classification));
    }

    [Fact]
    public async Task An_agent_switched_off_as_its_caller_hangs_up_is_recorded()
    {
        var store = await StoreAsync();
        using var hangUp = new CancellationTokenSource();
        var switchboard = new AgentSwitchboard(new HangsUpAfterSwitching(store, hangUp), store, TimeProvider.System);

        await switchboard.SetAsync("ops-bot", disable: true, "alice", "console", hangUp.Token);

        Assert.Equal("ops-bot", await store.FindDisabledAsync(["ops-bot"], CancellationToken.None));
        var record = Assert.Single(await store.ListAsync(new AuditQuery(Tool: "agents disable"), CancellationToken.None));
        Assert.Equal(("agent.disable", "alice", "ops-bot"), (record.Rule, record.Agent, record.Classification));

        // A caller gone before the switch is sent changes nothing.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => switchboard.SetAsync("analyst", disable: true, "alice", "console", hangUp.Token));
        Assert.Null(await store.FindDisabledAsync(["analyst"], CancellationToken.None));
    }
}
