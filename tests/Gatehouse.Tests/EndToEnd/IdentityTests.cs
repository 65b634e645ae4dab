using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>Who the caller is, end to end: delegation, scopes, quotas, revocation by subject or token, and the caller inside PostgreSQL.</summary>
[Collection(PostgresCollection.Name)]
public sealed class IdentityTests(PostgresFixture pg)
{
    private static Dictionary<string, object> Claims(params (string Name, object Value)[] claims) => claims.ToDictionary(c => c.Name, c => c.Value);

    [Fact]
    public async Task Postgres_row_level_security_sees_the_verified_agent_and_its_groups()
    {
        var table = "notes_" + Guid.NewGuid().ToString("N")[..8];
        foreach (var sql in new[]
        {
            $"create table {table} (owner text not null, team text not null, note text not null)",
            $"insert into {table} values ('analyst', 'finance', 'analyst note'), ('ops-bot', 'ops', 'ops note'), ('nobody', 'finance', 'finance note')",
            $"alter table {table} enable row level security",
            $"create policy by_caller on {table} using (owner = current_setting('gatehouse.agent', true) or team = any(string_to_array(current_setting('gatehouse.groups', true), ',')))",
            $"grant select on {table} to {pg.GatewayRole}",
        })
        {
            await pg.AdminScalarAsync(sql);
        }

        var gateway = TestGateway.Create(pg);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var analyst = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst", ["finance"]));
        var rows = (await analyst.QueryAsync($"select note from {table} order by note")).Structured().GetProperty("rows");
        Assert.Equal(["analyst note", "finance note"], rows.EnumerateArray().Select(r => r[0].GetString()));

        await using var ops = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var opsRows = (await ops.QueryAsync($"select note from {table}")).Structured().GetProperty("rows");
        Assert.Equal(["ops note"], opsRows.EnumerateArray().Select(r => r[0].GetString()));

        // A group whose name holds a comma is not passed on: split on commas, "interns,finance" would read as finance.
        await using var comma = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot", ["interns,finance", "ops"]));
        var commaRows = (await comma.QueryAsync($"select note, current_setting('gatehouse.groups') from {table}")).Structured().GetProperty("rows");
        Assert.Equal(["ops note"], commaRows.EnumerateArray().Select(r => r[0].GetString()));
        Assert.Equal("ops", commaRows[0][1].GetString());
    }

    [Fact]
    public async Task The_delegating_human_is_recorded_and_a_guardrail_can_require_one_for_writes()
    {
        var gateway = TestGateway.Create(pg, TestGateway.DefaultAgents + """

            guardrails:
              - id: writes-need-a-human
                match: { operations: [insert, update, delete], delegated: false }
                outcome: deny
                message: Writes need a human who delegated
            """);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using (var alone = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot")))
        {
            var refused = await alone.QueryAsync("update orders set status = status where id = 1");
            Assert.Equal("guard.writes-need-a-human", refused.Rule());
        }

        var act = Claims(("act", new Dictionary<string, object> { ["sub"] = "alice@example.com" }), ("azp", "ops-console"));
        await using var delegated = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot", claims: act));
        var ran = await delegated.QueryAsync("update orders set status = status where id = 1");
        Assert.NotEqual(true, ran.IsError);
        var record = await server.Gateway.Audit.GetAsync(ran.AuditId(), CancellationToken.None);
        Assert.Equal("alice@example.com", record!.DelegatedBy);
        Assert.Equal("ops-console", record.ClientId);
    }

    [Fact]
    public async Task A_tool_whose_scope_the_token_lacks_gets_403_insufficient_scope_and_a_bad_token_401_invalid_token()
    {
        var gateway = TestGateway.Create(pg, gateway: "tool_scopes:\n  query: [gatehouse.query]");
        await using var server = await HttpGateway.StartAsync(gateway);
        using var http = new HttpClient();

        async Task<HttpResponseMessage> SendAsync(string body, string token)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, server.Endpoint) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            request.Headers.Accept.ParseAdd("application/json, text/event-stream");
            return await http.SendAsync(request);
        }

        Task<HttpResponseMessage> CallQueryAsync(string token) =>
            SendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{"connection":"shop","sql":"select 1"}}}""", token);
        const string NumericMethod = """{"jsonrpc":"2.0","id":1,"method":1}""";

        using var unscoped = await CallQueryAsync(gateway.Mint("analyst"));
        Assert.Equal(HttpStatusCode.Forbidden, unscoped.StatusCode);
        var challenge = unscoped.Headers.WwwAuthenticate.ToString();
        Assert.Contains("error=\"insufficient_scope\"", challenge);
        Assert.Contains("scope=\"gatehouse.query\"", challenge);
        Assert.Contains("resource_metadata=", challenge);

        using var bad = await CallQueryAsync(gateway.Mint("analyst") + "x");
        Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        Assert.Contains("error=\"invalid_token\", error_description=\"the token's signature does not verify\"", bad.Headers.WwwAuthenticate.ToString());

        // With the scope, the same call goes through; the metadata lists the scope.
        await using var scoped = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst", claims: Claims(("scope", "gatehouse.query openid"))));
        Assert.NotEqual(true, (await scoped.QueryAsync("select 1")).IsError);
        var metadata = await http.GetStringAsync(new Uri(server.Endpoint, "/.well-known/oauth-protected-resource/mcp"));
        Assert.Contains("gatehouse.query", metadata);

        var refusals = await server.Gateway.Audit.ListAsync(new AuditQuery(Agent: "analyst", Decision: Verdict.Denied), CancellationToken.None);
        Assert.Contains(refusals, r => r.Rule == "identity.insufficient_scope");

        // A method that is not text is the endpoint's to answer, not a crash at the door's look at the body.
        using var numeric = await SendAsync(NumericMethod, gateway.Mint("analyst"));
        Assert.True(numeric.StatusCode < HttpStatusCode.InternalServerError, $"{numeric.StatusCode}");

        // Disabled, the token's tool call reaches the tool, which refuses it as disabled whatever its scopes; anything else
        // it sends is refused at the door.
        await server.State.SetDisabledAsync("analyst", true, "alice", CancellationToken.None);
        using var disabled = await CallQueryAsync(gateway.Mint("analyst"));
        Assert.Equal(HttpStatusCode.OK, disabled.StatusCode);
        Assert.Contains("identity.agent_disabled", await disabled.Content.ReadAsStringAsync());
        using var disabledNumeric = await SendAsync(NumericMethod, gateway.Mint("analyst"));
        Assert.Equal(HttpStatusCode.Unauthorized, disabledNumeric.StatusCode);
    }

    [Fact]
    public async Task A_quota_refuses_with_which_limit_and_when_it_resets_and_the_refusal_is_recorded()
    {
        var gateway = TestGateway.Create(pg, TestGateway.DefaultAgents + """

            quotas:
              agents:
                analyst: { calls_per_minute: 3 }
              groups:
                finance: { rows: 5, window: 1h }
            """);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var analyst = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
        for (var i = 0; i < 3; i++)
        {
            Assert.NotEqual(true, (await analyst.QueryAsync("select 1")).IsError);
        }

        var fourth = await analyst.QueryAsync("select 1");
        Assert.Equal("quota.calls_per_minute", fourth.Rule());
        Assert.Contains("its limit is 3", fourth.Text());
        Assert.Contains("the next call is allowed from", fourth.Text());
        Assert.Equal(Verdict.Denied, (await server.Gateway.Audit.GetAsync(fourth.AuditId(), CancellationToken.None))!.Decision);

        // The group's rows budget is shared: one member spends it (its result stops where the budget does), and the next
        // call of another member is refused.
        await using var first = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("narrow", ["finance"]));
        var spent = (await first.QueryAsync("select id from orders order by id limit 6")).Structured();
        Assert.Equal(5, spent.GetProperty("rows").GetArrayLength());
        Assert.True(spent.GetProperty("truncated").GetBoolean());
        Assert.Equal("the rows quota of group 'finance' allows 5 more in this window", spent.GetProperty("truncated_because").GetString());
        await using var second = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot", ["finance"]));
        var overRows = await second.QueryAsync("select 1");
        Assert.Equal("quota.rows", overRows.Rule());
        Assert.Contains("group 'finance' received 5 rows", overRows.Text());
    }

    [Fact]
    public async Task A_writes_returned_rows_stop_where_its_rows_quota_does_and_every_row_it_touched_counts()
    {
        var gateway = TestGateway.Create(pg, TestGateway.DefaultAgents + """

            quotas:
              agents:
                ops-bot: { rows: 3, window: 1h }
            """);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var bot = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var write = (await bot.QueryAsync("update orders set note = note where id <= 5 returning id")).Structured();
        Assert.Equal(5, write.GetProperty("affected_rows").GetInt32());
        Assert.Equal(3, write.GetProperty("rows").GetArrayLength());
        Assert.Equal("the rows quota of agent 'ops-bot' allows 3 more in this window", write.GetProperty("truncated_because").GetString());

        var next = await bot.QueryAsync("select 1");
        Assert.Equal("quota.rows", next.Rule());
        Assert.Contains("agent 'ops-bot' received 5 rows", next.Text());
    }

    [Fact]
    public async Task Switching_a_name_nothing_knows_or_enabling_under_another_switch_says_so()
    {
        // Reported done and exit 0, while the real agent went on working: names match exactly, case included.
        var gateway = TestGateway.Create(pg);
        await using var server = await HttpGateway.StartAsync(gateway);
        var typo = await StdioTests.RunGatehouse(["agents", "disable", "Analyst", "--config", gateway.PolicyPath]);
        Assert.Equal(0, typo.ExitCode);
        Assert.Contains("note: no agent named 'Analyst' is in the policy or has called yet; names match exactly, case included (did you mean 'analyst'?)", typo.Stderr);
        var known = await StdioTests.RunGatehouse(["agents", "disable", "analyst", "--config", gateway.PolicyPath]);
        Assert.DoesNotContain("note:", known.Stderr);

        // Enabled by name while its subject stays switched off: its calls are still refused, and the answer says why.
        Assert.Equal(0, (await StdioTests.RunGatehouse(["agents", "disable", "--subject", "analyst", "--config", gateway.PolicyPath])).ExitCode);
        var enabled = await StdioTests.RunGatehouse(["agents", "enable", "analyst", "--config", gateway.PolicyPath]);
        Assert.Equal(0, enabled.ExitCode);
        Assert.Contains("note: still disabled: subject 'analyst'", enabled.Stderr);
    }

    [Fact]
    public async Task Disabling_a_subject_or_one_token_id_refuses_those_calls_and_no_others()
    {
        var gateway = TestGateway.Create(pg);
        await using var server = await HttpGateway.StartAsync(gateway);
        var leaked = gateway.Mint("analyst", claims: Claims(("jti", "leaked-token-1")));
        var fresh = gateway.Mint("analyst");

        var byJti = await StdioTests.RunGatehouse(["agents", "disable", "--jti", "leaked-token-1", "--config", gateway.PolicyPath, "--as", "alice"]);
        Assert.Equal(0, byJti.ExitCode);
        var (status, challenge) = await GatewayClients.KnockAsync(server.Endpoint, leaked);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("token 'leaked-token-1' (used by agent 'analyst') has been disabled", challenge);

        await using (var client = await GatewayClients.HttpAsync(server.Endpoint, fresh))
        {
            Assert.NotEqual(true, (await client.QueryAsync("select 1")).IsError);
        }

        Assert.Equal(0, (await StdioTests.RunGatehouse(["agents", "disable", "--subject", "ops-bot", "--config", gateway.PolicyPath])).ExitCode);
        Assert.Contains("(used by agent 'ops-bot') has been disabled", (await GatewayClients.KnockAsync(server.Endpoint, gateway.Mint("ops-bot"))).Challenge);

        var neither = await StdioTests.RunGatehouse(["agents", "disable", "--config", gateway.PolicyPath]);
        Assert.NotEqual(0, neither.ExitCode);
        Assert.Contains("name exactly one of", neither.Stderr);

        // A name as typed with stray spaces means the agent; a name no token can carry is refused, not reported done.
        Assert.Equal(0, (await StdioTests.RunGatehouse(["agents", "disable", " analyst ", "--config", gateway.PolicyPath])).ExitCode);
        Assert.Contains("agent 'analyst' has been disabled", (await GatewayClients.KnockAsync(server.Endpoint, fresh)).Challenge);

        // Each refusal at the door is recorded under the identity the token carried.
        var denied = await server.State.ListAsync(new AuditQuery(Decision: Verdict.Denied), CancellationToken.None);
        Assert.Equal(["analyst", "analyst", "ops-bot"], denied.Where(r => r.Rule == "identity.agent_disabled").Select(r => r.Agent).Order());

        var invisible = await StdioTests.RunGatehouse(["agents", "disable", "ana\u200Blyst", "--config", gateway.PolicyPath]);
        Assert.NotEqual(0, invisible.ExitCode);
        Assert.Contains("holds control or invisible characters", invisible.Stderr);
    }

    [Fact]
    public async Task A_callers_group_can_map_to_a_postgres_role_the_call_runs_as()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var reader = "finance_reader_" + suffix;
        var stranger = "stranger_" + suffix;
        await pg.AdminScalarAsync($"create role {reader} nologin");
        await pg.AdminScalarAsync($"create role {stranger} nologin");
        await pg.AdminScalarAsync($"grant {reader} to {pg.GatewayRole}");
        var gateway = TestGateway.Create(pg, connectionSettings: $"group_roles:\n  finance: {reader}\n  outsiders: {stranger}");
        await using var server = await HttpGateway.StartAsync(gateway);

        await using var finance = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst", ["finance"]));
        var asReader = await finance.QueryAsync("select current_user::text");
        Assert.Equal(reader, asReader.Structured().GetProperty("rows")[0][0].GetString());

        await using var plain = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
        Assert.Equal(pg.GatewayRole, (await plain.QueryAsync("select current_user::text")).Structured().GetProperty("rows")[0][0].GetString());

        // A mapped role the gateway may not become is refused by PostgreSQL, with what to grant.
        await using var outsider = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst", ["outsiders"]));
        var refused = await outsider.QueryAsync("select 1");
        Assert.Equal("database.permission_denied", refused.Rule());
        Assert.Contains($"GRANT {stranger} TO", refused.Text());
    }
}
