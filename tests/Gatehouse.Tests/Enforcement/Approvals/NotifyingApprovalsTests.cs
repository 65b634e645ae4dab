using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Enforcement.Approvals;

public sealed class NotifyingApprovalsTests
{
    internal sealed class Events : IApprovalNotifier
    {
        public List<ApprovalEvent> Published { get; } = [];

        public void Publish(ApprovalEvent approvalEvent) => Published.Add(approvalEvent);
    }

    [Fact]
    public async Task A_decision_stored_but_not_read_back_is_reported_as_made_and_only_its_notification_is_lost()
    {
        var store = await SqliteStateStore.OpenAsync(Path.Combine(TestDirectory.Create("notify"), "state.db"), CancellationToken.None);
        var events = new Events();
        var approvals = new NotifyingApprovals(new InterceptedApprovals(store) { ReadsFail = true }, store, events);
        var now = DateTimeOffset.UtcNow;
        var request = new AccessRequest(
            "req_1", "analyst", "analyst", "gatehouse-dev", "shop", [new RelationName("public", "orders")], AccessLevel.Read, "report", TimeSpan.FromHours(1), AccessRequestStatus.Pending, now);
        await approvals.CreateAsync(request, 20, CancellationToken.None);

        Assert.True(await approvals.DecideAsync("req_1", new ApprovalVote("alice", true, now, null), 1, TimeSpan.FromHours(24), now, CancellationToken.None));

        Assert.Equal(AccessRequestStatus.Approved, (await store.GetAsync("req_1", now, CancellationToken.None))!.Status);
        Assert.Equal(["request.created"], events.Published.Select(e => e.Event));
    }
}
