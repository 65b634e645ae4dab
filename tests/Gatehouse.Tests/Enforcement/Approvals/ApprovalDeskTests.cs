using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Enforcement.Approvals;

/// <summary>How many approvers an access request needs, decided through the desk every channel uses, on a real (SQLite) store.</summary>
public sealed class ApprovalDeskTests
{
    /// <summary>A policy where analyst reads public on shop, with these lines under <c>approvals:</c>.</summary>
    internal static GatewayPolicy AnalystPolicy(string approvals) => PolicyLoader.Parse(
        $"""
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
          {approvals}
        """,
        "/etc/gatehouse/gatehouse.yaml");

    [Fact]
    public async Task With_the_operator_among_three_approvers_and_three_required_an_access_request_takes_the_other_two_and_the_operators_name_decides_none()
    {
        var store = await SqliteStateStore.OpenAsync(Path.Combine(TestDirectory.Create("desk"), "state.db"), CancellationToken.None);
        var policy = AnalystPolicy("approvers: [alice, bob, operator]\n  required: 3");
        var approvals = new NotifyingApprovals(store, store, new NotifyingApprovalsTests.Events());
        var now = DateTimeOffset.UtcNow;
        await approvals.CreateAsync(
            new AccessRequest("req_1", "analyst", "analyst", "https://id.example", "shop", [new RelationName("public", "orders")], AccessLevel.Read, "report", TimeSpan.FromHours(1), AccessRequestStatus.Pending, now)
            {
                Required = policy.Approvals.RequiredForAccess,
            },
            20,
            CancellationToken.None);
        var desk = new ApprovalDesk(new LivePolicy(policy), approvals, store, TimeProvider.System);

        // The operator is asked about statements only: typed in with --as, its name would be a third approval nobody gives.
        var operatorVote = await desk.DecideAsync("req_1", ApprovalSettings.Operator, null, approve: true, null, "cli", CancellationToken.None);
        Assert.True(operatorVote.Forbidden, operatorVote.Message);
        Assert.Contains("approves statements only", operatorVote.Message, StringComparison.Ordinal);

        Assert.Equal("Recorded alice's approval of req_1: 1 of 2 so far.", (await desk.DecideAsync("req_1", "alice", null, approve: true, null, "cli", CancellationToken.None)).Message);
        var granted = await desk.DecideAsync("req_1", "bob", null, approve: true, null, "cli", CancellationToken.None);
        Assert.StartsWith("Approved req_1: analyst may read public.orders on shop until", granted.Message, StringComparison.Ordinal);
        Assert.Single(await store.ActiveGrantsAsync("analyst", DateTimeOffset.UtcNow, CancellationToken.None));
    }
}
