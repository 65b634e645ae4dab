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

    // An approval desk over the store, with analyst's pending request req_1 for alice to decide.
    private static async Task<ApprovalDesk> DeskAsync(SqliteStateStore store, InterceptedApprovals intercepted)
    {
        var approvals = new NotifyingApprovals(intercepted, store, new NotifyingApprovalsTests.Events());
        var policy = PolicyLoader.Parse(
            """
            connections:
              shop:
                connection_string: "Host=db;Database=shop;Username=gw"
                password_file: shop.password
            issuers:
              - issuer: https://id.example
                audience: gatehouse
                jwks_url: https://id.example/jwks
            agents:
              analyst:
                grants:
                  - connection: shop
                    access: read
                    schemas: [public]
            approvals:
              approvers: [alice]
            """,
            "/etc/gatehouse/gatehouse.yaml");
        await approvals.CreateAsync(
            new AccessRequest("req_1", "analyst", "analyst", "gatehouse-dev", "shop", [new RelationName("public", "orders")], AccessLevel.Read, "report", TimeSpan.FromHours(1), AccessRequestStatus.Pending, DateTimeOffset.UtcNow),
            20,
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
        var desk = await DeskAsync(store, new InterceptedApprovals(store) { AfterDecide = hangUp.Cancel });

        var outcome = await desk.DecideAsync("req_1", "alice", null, approve: true, "for the report", "console", hangUp.Token);

        Assert.True(outcome.Done, outcome.Message);
        await AssertApprovedOnRecordAsync(store);
    }

    [Fact]
    public async Task A_decision_stored_by_a_store_that_then_stops_answering_is_recorded()
    {
        var store = await StoreAsync();
        var intercepted = new InterceptedApprovals(store);
        intercepted.AfterDecide = () => intercepted.ReadsFail = true;
        var desk = await DeskAsync(store, intercepted);

        var outcome = await desk.DecideAsync("req_1", "alice", null, approve: true, null, "console", CancellationToken.None);

        Assert.True(outcome.Done, outcome.Message);
        Assert.Contains("Approved req_1: analyst may read public.orders on shop (the state store could not be read back for when the grant ends)", outcome.Message, StringComparison.Ordinal);
        await AssertApprovedOnRecordAsync(store);
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
