using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Pipeline;

/// <summary>Writes held by the rows they really touched, and what that means for approvals and observe mode.</summary>
public sealed partial class GatewayPipelineTests
{
    private const string AnalystWrites = """
          analyst:
            grants:
              - connection: shop
                access: write
                schemas: [public]
        """;

    private static readonly PlanFacts UpdateOfOneRow = new([new(new("public", "orders"), AccessLevel.Write, "update")], [], 0, 1) { Writers = 1 };

    // A writer held by one require_approval rule on orders (its match conditions given), approvals not waited for.
    private GatewayPipeline Writer(string match, string gateway = "") => Pipeline(Version(AnalystWrites, $$"""
        {{gateway}}
        guardrails:
          - id: orders-by-hand
            match: { tables: [public.orders]{{match}} }
            outcome: require_approval
        approvals:
          approvers: [alice, bob]
          wait: 0s
        """));

    private Task<CallOutcome> Write(GatewayPipeline pipeline, string sql, string? token = null) =>
        pipeline.QueryAsync(new CallContext("query", token ?? Token(), "test", "s1"), new QueryRequest("shop", sql, [], null), CancellationToken.None).AsTask();

    [Fact]
    public async Task In_observe_only_mode_a_write_postgres_reports_no_count_for_commits_as_observe_mode_promises()
    {
        var observing = Pipeline(Version(AnalystWrites) with { Connections = _policy.Connections.ToDictionary(c => c.Key, c => c.Value with { ObserveOnly = true }) });
        _database.Plan = UpdateOfOneRow;
        _database.WrittenRows = null;
        var outcome = await Write(observing, "with u as (update orders set note = 'x' where id = 1 returning id) select count(*) from u");
        Assert.Equal("observe.would_deny", outcome.Decision.Rule);
        Assert.Contains("guard.uncounted_write", outcome.Decision.Reason, StringComparison.Ordinal);
        Assert.Equal(1, _database.Commits);
    }

    [Fact]
    public async Task A_write_its_real_rows_sent_for_approval_goes_back_to_its_request_instead_of_running_again()
    {
        var pipeline = Writer(", min_rows: 5");
        _database.Plan = UpdateOfOneRow;
        _database.WrittenRows = 50;
        const string Sql = "update orders set note = 'x' where id % 1 = 0";
        Assert.Equal("approval.pending", (await Write(pipeline, Sql)).Decision.Rule);
        var ran = _database.Executions;
        Assert.Equal(0, _database.Commits);

        Assert.Equal("approval.pending", (await Write(pipeline, Sql)).Decision.Rule);
        Assert.Equal(ran, _database.Executions);
        Assert.Single(_statements.Requests);
    }

    [Fact]
    public async Task A_write_whose_dry_run_passes_the_write_limit_is_refused_before_anyone_is_asked_to_approve_it()
    {
        var pipeline = Writer("", gateway: "gateway:\n  limits:\n    max_write_rows: 10");
        _database.Plan = UpdateOfOneRow;
        _database.WrittenRows = 50;
        var outcome = await Write(pipeline, "update orders set note = 'x' where id % 1 = 0");
        Assert.Equal("guard.large_write", outcome.Decision.Rule);
        Assert.Contains("touched 50 rows, more than the limit of 10", outcome.Decision.Reason, StringComparison.Ordinal);
        Assert.Empty(_statements.Requests);
        Assert.Equal(0, _database.Commits);
    }

    [Fact]
    public async Task A_request_made_on_one_persons_behalf_is_neither_used_nor_blocking_for_the_agent_acting_for_another()
    {
        var pipeline = Writer("");
        _database.Plan = UpdateOfOneRow;
        string For(string human)
        {
            var issuer = _policy.Issuers[0];
            return Gatehouse.Enforcement.Identity.DevIssuer.Mint(issuer, Gatehouse.Enforcement.Identity.DevIssuer.LoadOrCreateKey(issuer.Keys.DevKeyFile!), "analyst", [], TimeSpan.FromMinutes(5), DateTimeOffset.UtcNow,
                new Dictionary<string, object> { ["act"] = new Dictionary<string, object> { ["sub"] = human } });
        }

        const string Sql = "update orders set note = 'x' where id = 1";
        Assert.Equal("approval.pending", (await Write(pipeline, Sql, For("alice"))).Decision.Rule);
        _statements.ApproveAll();

        // Approved, but for alice's call: the agent acting for bob files (and waits on) a request of its own.
        Assert.Equal("approval.pending", (await Write(pipeline, Sql, For("bob"))).Decision.Rule);
        Assert.Equal(0, _database.Commits);
        Assert.Equal(["alice", "bob"], _statements.Requests.Select(r => r.DelegatedBy!).Order(StringComparer.Ordinal));
        Assert.Equal("approval.approved", (await Write(pipeline, Sql, For("alice"))).Decision.Rule);
    }
}
