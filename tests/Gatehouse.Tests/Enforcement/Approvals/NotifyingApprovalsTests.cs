using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Enforcement.Approvals;

public sealed class NotifyingApprovalsTests
{
    /// <summary>A real store whose reads of single requests fail, as a store that stops answering between two statements does.</summary>
    private sealed class ReadsFail(IApprovalStore store) : IApprovalStore
    {
        public ValueTask<int> CreateAsync(AccessRequest request, int maxPending, CancellationToken cancellationToken) => store.CreateAsync(request, maxPending, cancellationToken);

        public ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => throw new TimeoutException("the store stopped answering");

        public ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken) => store.ListAsync(status, now, cancellationToken);

        public ValueTask<IReadOnlyList<AccessRequest>> ListOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) => store.ListOfAgentAsync(agent, limit, now, cancellationToken);

        public ValueTask<int> CountPendingAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) => store.CountPendingAsync(agent, now, cancellationToken);

        public ValueTask<bool> DecideAsync(string id, bool approve, string decidedBy, string? note, TimeSpan maxGrant, DateTimeOffset now, CancellationToken cancellationToken) =>
            store.DecideAsync(id, approve, decidedBy, note, maxGrant, now, cancellationToken);

        public ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) => store.RevokeAsync(id, revokedBy, now, cancellationToken);

        public ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) => store.ActiveGrantsAsync(agent, now, cancellationToken);
    }

    private sealed class Events : IApprovalNotifier
    {
        public List<ApprovalEvent> Published { get; } = [];

        public void Publish(ApprovalEvent approvalEvent) => Published.Add(approvalEvent);
    }

    [Fact]
    public async Task A_decision_stored_but_not_read_back_is_reported_as_made_and_only_its_notification_is_lost()
    {
        var store = await SqliteStateStore.OpenAsync(Path.Combine(TestDirectory.Create("notify"), "state.db"), CancellationToken.None);
        var events = new Events();
        var approvals = new NotifyingApprovals(new ReadsFail(store), store, events);
        var now = DateTimeOffset.UtcNow;
        var request = new AccessRequest(
            "req_1", "analyst", "analyst", "gatehouse-dev", "shop", [new RelationName("public", "orders")], AccessLevel.Read, "report", TimeSpan.FromHours(1), AccessRequestStatus.Pending, now);
        await approvals.CreateAsync(request, 20, CancellationToken.None);

        Assert.True(await approvals.DecideAsync("req_1", approve: true, "alice", null, TimeSpan.FromHours(24), now, CancellationToken.None));

        Assert.Equal(AccessRequestStatus.Approved, (await store.GetAsync("req_1", now, CancellationToken.None))!.Status);
        Assert.Equal(["request.created"], events.Published.Select(e => e.Event));
    }
}
