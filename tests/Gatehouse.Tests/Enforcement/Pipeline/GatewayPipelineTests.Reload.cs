using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Pipeline;

public sealed partial class GatewayPipelineTests
{
    // The test policy, with the given agents and other sections; the connection and issuer stay as they are.
    private GatewayPolicy Version(string agents, string more = "") => PolicyLoader.Parse(
        $"""
        connections:
          shop:
            connection_string: "Host=127.0.0.1;Database=shop;Username=gw"
        issuers:
          - issuer: gatehouse-dev
            audience: gatehouse
            dev_key_file: dev.pem
        agents:
        {agents}
        {more}
        """,
        Path.Combine(_directory, "gatehouse.yaml"));

    private const string AnalystReads = """
          analyst:
            grants:
              - connection: shop
                access: read
                schemas: [public]
        """;

    private const string AnalystHasNothing = """
          analyst:
            grants: []
        """;

    [Fact]
    public async Task A_reloaded_policy_decides_the_next_call()
    {
        var live = new LivePolicy(Version(AnalystReads));
        var pipeline = Pipeline(live);
        var query = new QueryRequest("shop", "select * from orders", [], null);
        Assert.True((await pipeline.QueryAsync(new CallContext("query", Token(), "test", "s1"), query, CancellationToken.None)).Decision.IsAllowed);

        Assert.Empty(live.TryReplace(Version(AnalystHasNothing)));

        var refused = await pipeline.QueryAsync(new CallContext("query", Token(), "test", "s1"), query, CancellationToken.None);
        Assert.False(refused.Decision.IsAllowed);
        Assert.StartsWith("grant.", refused.Decision.Rule);
        Assert.Equal(1, _database.Executions);
    }

    [Fact]
    public async Task A_call_in_flight_keeps_the_policy_it_started_with()
    {
        var live = new LivePolicy(Version(AnalystReads));
        var pipeline = Pipeline(live);
        var release = new TaskCompletionSource();
        _database.Hold = _ => release.Task;
        var call = pipeline.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "select * from orders", [], null), CancellationToken.None).AsTask();
        await WaitUntil(() => _database.Executions == 1);

        Assert.Empty(live.TryReplace(Version(AnalystHasNothing)));
        release.SetResult();

        var outcome = await call;
        Assert.True(outcome.Decision.IsAllowed);
        Assert.Equal("query.allowed", outcome.Decision.Rule);
    }

    [Fact]
    public async Task Quota_counts_carry_over_a_reload_that_keeps_the_quotas_and_restart_when_they_change()
    {
        const string twoPerMinute = "quotas:\n  agents:\n    analyst: { calls_per_minute: 2 }";
        const string threePerMinute = "quotas:\n  agents:\n    analyst: { calls_per_minute: 3 }";
        var live = new LivePolicy(Version(AnalystReads, twoPerMinute));
        var pipeline = Pipeline(live);
        Task<CallOutcome> Call() => pipeline.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "select * from orders", [], null), CancellationToken.None).AsTask();
        Assert.True((await Call()).Decision.IsAllowed);
        Assert.True((await Call()).Decision.IsAllowed);

        // The same quotas in a new version of the file: the two calls still count.
        Assert.Empty(live.TryReplace(Version(AnalystReads + "\n  analyst-two:\n    grants: []", twoPerMinute)));
        Assert.Equal("quota.calls_per_minute", (await Call()).Decision.Rule);

        Assert.Empty(live.TryReplace(Version(AnalystReads, threePerMinute)));
        Assert.True((await Call()).Decision.IsAllowed);
    }
}
