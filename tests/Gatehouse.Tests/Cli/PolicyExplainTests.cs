using System.Text.Json;
using Gatehouse.Enforcement.Audit;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.EndToEnd;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Cli;

/// <summary><c>gatehouse policy explain</c>: its answer for a statement is what the query tool then does with it.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PolicyExplainTests(PostgresFixture pg)
{
    private readonly TestGateway _gateway = TestGateway.Create(
        pg,
        connectionSettings: "masking: overlay\ntags: { public.customers.email: email }",
        agents: TestGateway.DefaultAgents + """

            guardrails:
              - id: orders-by-hand
                connection: shop
                match: { tables: [public.orders], kinds: [update] }
                outcome: require_approval
                message: Order changes are reviewed
            approvals:
              wait: 1s
            """);

    public static TheoryData<string, string, string> Statements => new()
    {
        { "analyst", "", "select count(*) from orders" },
        { "analyst", "", "select email from customers" },
        { "analyst", "", "select id, name from customers where id = 1" },
        { "analyst", "", "delete from orders" },
        { "analyst", "", "select pg_sleep(1)" },
        { "narrow", "", "select * from payments" },
        { "narrow", "finance", "select * from payments" },
        { "ops-bot", "", "update orders set status = 'shipped' where id = 3" },
    };

    [Theory]
    [MemberData(nameof(Statements))]
    public async Task Explain_says_what_query_then_does(string agent, string groups, string sql)
    {
        string[] groupArguments = groups.Length == 0 ? [] : ["--groups", groups];
        var (exitCode, stdout, stderr) = await StdioTests.RunGatehouse(
            ["policy", "explain", "--config", _gateway.PolicyPath, "--agent", agent, .. groupArguments, "--connection", "shop", "--sql", sql, "--json"]);
        Assert.True(exitCode is ExitCodes.Ok or ExitCodes.Refused, stderr);
        var explained = JsonDocument.Parse(stdout).RootElement;
        var decision = explained.GetProperty("decision").GetString();
        var rule = explained.GetProperty("rule").GetString();
        Assert.Equal(decision == "allowed" ? ExitCodes.Ok : ExitCodes.Refused, exitCode);

        await using var http = await HttpGateway.StartAsync(_gateway);
        await using var client = await GatewayClients.HttpAsync(http.Endpoint, _gateway.Mint(agent, groups.Length == 0 ? [] : [groups]));
        var result = await client.QueryAsync(sql);

        switch (decision)
        {
            case "allowed":
                Assert.NotEqual(true, result.IsError);
                Assert.Equal(rule, (await http.State.GetAsync(result.AuditId(), CancellationToken.None))!.Rule);
                break;
            case "needs_approval":
                Assert.Equal("approval.pending", result.Rule());
                Assert.Contains(explained.GetProperty("reason").GetString()!, result.Text());
                break;
            default:
                Assert.True(result.IsError);
                Assert.Equal(rule, result.Rule());
                break;
        }
    }

    [Fact]
    public async Task The_explanation_walks_through_each_stage_and_nothing_runs_or_is_recorded()
    {
        await _gateway.CreateStateAsync();
        var before = await pg.AdminScalarAsync("select status from orders where id = 3");
        var (exitCode, stdout, stderr) = await StdioTests.RunGatehouse(
            ["policy", "explain", "--config", _gateway.PolicyPath, "--agent", "ops-bot", "--connection", "shop", "--sql", "update orders set status = 'shipped' where id = 3"]);

        Assert.True(exitCode == ExitCodes.Refused, stderr);
        foreach (var step in new[] { "identity", "statement", "grants", "kind", "classification", "grant", "masking", "guardrails", "execution", "decision" })
        {
            Assert.Matches($@"(?m)^  {step} +\S", stdout);
        }

        Assert.Contains("public.orders (update): covered by write on public.orders (policy)", stdout);
        Assert.Contains("guard.orders-by-hand: Order changes are reviewed", stdout);
        Assert.Contains("waits for approval (guard.orders-by-hand)", stdout);
        Assert.Contains("Not judged: token scopes and quotas", stdout);
        Assert.Equal(before, await pg.AdminScalarAsync("select status from orders where id = 3"));
        var (_, state) = await Gatehouse.McpServer.Cli.CliApp.LoadGatewayAsync(_gateway.PolicyPath, CancellationToken.None);
        Assert.Empty(await state.Audit.ListAsync(new AuditQuery(), CancellationToken.None));
        Assert.Empty(await state.Store.ListStatementsAsync(true, DateTimeOffset.UtcNow, CancellationToken.None));
    }

    [Fact]
    public async Task Where_no_gateway_has_run_the_explanation_says_so_and_leaves_no_state_behind()
    {
        var state = Path.Combine(_gateway.Directory, "state.db");

        var (exitCode, stdout, stderr) = await StdioTests.RunGatehouse(
            ["policy", "explain", "--config", _gateway.PolicyPath, "--agent", "analyst", "--connection", "shop", "--sql", "select count(*) from orders"]);

        Assert.True(exitCode == ExitCodes.Ok, stderr);
        Assert.Contains($"no gateway state at {state}; explained as if no grant was time-boxed and no agent disabled.", stderr);
        Assert.Contains("runs", stdout);
        Assert.False(File.Exists(state));
    }

    [Fact]
    public async Task A_disabled_agent_is_explained_as_refused_by_the_identify_stage()
    {
        await _gateway.CreateStateAsync();
        Assert.Equal(ExitCodes.Ok, (await StdioTests.RunGatehouse(["agents", "disable", "analyst", "--config", _gateway.PolicyPath])).ExitCode);

        var (exitCode, stdout, _) = await StdioTests.RunGatehouse(
            ["policy", "explain", "--config", _gateway.PolicyPath, "--agent", "analyst", "--connection", "shop", "--sql", "select count(*) from orders", "--json"]);

        Assert.Equal(ExitCodes.Refused, exitCode);
        Assert.Equal("identity.agent_disabled", JsonDocument.Parse(stdout).RootElement.GetProperty("rule").GetString());
    }
}
