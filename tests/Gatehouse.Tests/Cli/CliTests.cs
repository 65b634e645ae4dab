using System.CommandLine;
using System.Text.Json;
using Gatehouse.Enforcement.Identity;
using Gatehouse.McpServer.Cli;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.EndToEnd;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Cli;

/// <summary>The gatehouse binary as an admin runs it: minting tokens, reading the audit log, deciding access requests.</summary>
[Collection(PostgresCollection.Name)]
public sealed class CliTests(PostgresFixture pg)
{
    private readonly TestGateway _gateway = TestGateway.Create(pg);

    private Task<(int ExitCode, string Stdout, string Stderr)> Gatehouse(params string[] arguments) => StdioTests.RunGatehouse(arguments);

    [Fact]
    public async Task Every_verb_has_help()
    {
        foreach (var verb in new[] { "serve", "token mint", "audit list", "audit show", "approvals list", "approvals approve", "agents disable", "classify", "setup", "grants list", "grants revoke", "audit verify", "audit sessions", "audit replay", "audit purge", "approvals show", "approvals cancel", "demo", "policy check", "policy explain", "connections rotate" })
        {
            var (exitCode, stdout, _) = await Gatehouse([.. verb.Split(' '), "--help"]);
            Assert.Equal(0, exitCode);
            Assert.Contains("Usage:", stdout);
        }
    }

    [Theory]
    [InlineData("audit", "verify")]
    [InlineData("agents", "disable", "leaked-bot")]
    [InlineData("approvals", "list")]
    public async Task An_admin_command_where_no_gateway_state_is_fails_instead_of_acting_on_a_new_empty_one(params string[] verb)
    {
        // A policy copied elsewhere resolves its state beside itself: acting there, a revocation revoked nothing and an
        // empty log verified as intact, each reported as a success.
        var copy = TestGateway.Create(pg);
        var state = Path.Combine(copy.Directory, "state.db");
        Assert.False(File.Exists(state));

        var (exitCode, stdout, stderr) = await Gatehouse([.. verb, "--config", copy.PolicyPath]);

        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Contains($"no gateway state at {state}", stderr);
        Assert.DoesNotContain("Intact", stdout);
        Assert.False(File.Exists(state));
    }

    [Theory]
    [InlineData("7")]
    [InlineData("-1")]
    [InlineData("")]
    public async Task A_decision_filter_that_names_no_decision_is_refused_rather_than_matching_nothing(string decision)
    {
        await _gateway.CreateStateAsync();

        var (exitCode, _, stderr) = await Gatehouse("audit", "list", "--config", _gateway.PolicyPath, "--decision", decision);

        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Contains($"--decision must be allowed, denied, failed or started (got '{decision}')", stderr);
    }

    [Fact]
    public async Task A_command_interrupted_midway_says_so_and_exits_non_zero_while_a_stopped_server_exits_zero()
    {
        using var stopped = new CancellationTokenSource();
        await stopped.CancelAsync();
        Task<int> Interrupted(ParseResult _, CancellationToken token) => Task.FromException<int>(new OperationCanceledException(token));
        var parse = new RootCommand().Parse([]);

        Assert.Equal(ExitCodes.Interrupted, await CliApp.Guarded(Interrupted)(parse, stopped.Token));
        Assert.Equal(ExitCodes.Ok, await CliApp.Guarded(Interrupted, runsUntilStopped: true)(parse, stopped.Token));
    }

    [Fact]
    public async Task A_minted_token_is_accepted_by_the_gateway_it_was_minted_for()
    {
        var (exitCode, stdout, _) = await Gatehouse("token", "mint", "--config", _gateway.PolicyPath, "--agent", "analyst", "--groups", "finance,ops", "--ttl", "5m");
        Assert.Equal(0, exitCode);
        var result = await new TokenValidator(_gateway.Policy.Issuers, TimeProvider.System).ValidateAsync(stdout.Trim(), CancellationToken.None);
        Assert.Equal("analyst", result.Identity!.Agent);
        Assert.Equal(["finance", "ops"], result.Identity.Groups);
        Assert.InRange(result.Identity.ExpiresAt - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(4), TimeSpan.FromMinutes(6));
    }

    [Fact]
    public async Task A_missing_or_invalid_policy_fails_with_the_file_and_line()
    {
        var missing = await Gatehouse("audit", "list", "--config", "/nonexistent.yaml");
        Assert.Equal(ExitCodes.Error, missing.ExitCode);
        Assert.Contains("does not exist", missing.Stderr);

        var bad = Path.Combine(_gateway.Directory, "bad.yaml");
        File.WriteAllText(bad, File.ReadAllText(_gateway.PolicyPath).Replace("access: read", "access: everything"));
        var invalid = await Gatehouse("serve", "--config", bad);
        Assert.Equal(ExitCodes.Error, invalid.ExitCode);
        Assert.Contains("bad.yaml:", invalid.Stderr);
        Assert.Contains("access 'everything' is not known", invalid.Stderr);
    }

    [Fact]
    public async Task An_unexpected_failure_is_one_line_not_a_stack_trace()
    {
        // The dev issuer's key file holds no key.
        File.WriteAllText(Path.Combine(_gateway.Directory, "dev-issuer.pem"), "not a key");
        var (exitCode, stdout, stderr) = await Gatehouse("token", "mint", "--config", _gateway.PolicyPath, "--agent", "analyst");
        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Empty(stdout);
        Assert.StartsWith("gatehouse: ", stderr, StringComparison.Ordinal);
        Assert.Contains("PEM", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Serving_stdio_without_a_token_is_refused_with_how_to_get_one()
    {
        var (exitCode, _, stderr) = await Gatehouse("serve", "--config", _gateway.PolicyPath);
        Assert.Equal(ExitCodes.Refused, exitCode);
        Assert.Contains(StdioCallerToken.EnvironmentVariable, stderr);
        Assert.Contains("token mint", stderr);
    }

    [Fact]
    public async Task The_audit_log_lists_filters_and_shows_calls()
    {
        await using (var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("analyst", claims: new Dictionary<string, object> { ["azp"] = "reporting-app" })))
        {
            await client.QueryAsync("select count(*) from orders");
            await client.QueryAsync("delete from orders");
        }

        var table = await Gatehouse("audit", "list", "--config", _gateway.PolicyPath, "--agent", "analyst");
        Assert.Equal(0, table.ExitCode);
        Assert.Contains("grant.read_only", table.Stdout);
        Assert.Contains("select count(*) from orders", table.Stdout);

        var denied = await Gatehouse("audit", "list", "--config", _gateway.PolicyPath, "--decision", "denied", "--since", "1h", "--json");
        using var json = JsonDocument.Parse(denied.Stdout);
        var record = Assert.Single(json.RootElement.EnumerateArray());
        Assert.Equal("delete from orders", record.GetProperty("sql").GetString());

        var id = record.GetProperty("id").GetString()!;
        var show = await Gatehouse("audit", "show", id, "--config", _gateway.PolicyPath);
        Assert.Contains("needs write access", show.Stdout);
        // The whole call: the client the token was issued to, and whom the agent acted for (no one here), too.
        Assert.Matches(@"client\s+reporting-app", show.Stdout);
        Assert.Matches(@"on behalf of\s+-", show.Stdout);
        Assert.Equal(ExitCodes.Refused, (await Gatehouse("audit", "show", "aud_nope", "--config", _gateway.PolicyPath)).ExitCode);
        Assert.Equal(ExitCodes.Error, (await Gatehouse("audit", "list", "--config", _gateway.PolicyPath, "--decision", "maybe")).ExitCode);

        Assert.Equal(ExitCodes.Error, (await Gatehouse("audit", "purge", "--config", _gateway.PolicyPath, "--older-than", "5m")).ExitCode);
        Assert.Contains("nothing purged", (await Gatehouse("audit", "purge", "--config", _gateway.PolicyPath, "--older-than", "1h")).Stdout);
        var verified = await Gatehouse("audit", "verify", "--config", _gateway.PolicyPath);
        Assert.Equal(0, verified.ExitCode);
        Assert.Contains("Intact", verified.Stdout);
    }

    [Fact]
    public async Task A_session_replays_as_a_timeline_of_its_calls_in_order()
    {
        await using (var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("narrow")))
        {
            await client.QueryAsync("select count(*) from orders");
            await client.QueryAsync("select count(*) from customers");
        }

        var sessions = await Gatehouse("audit", "sessions", "--config", _gateway.PolicyPath, "--agent", "narrow", "--json");
        var session = System.Text.Json.JsonDocument.Parse(sessions.Stdout).RootElement[0];
        Assert.True(session.GetProperty("calls").GetInt32() >= 3, sessions.Stdout);
        Assert.Equal(1, session.GetProperty("denied").GetInt32());

        var replay = await Gatehouse("audit", "replay", session.GetProperty("session_id").GetString()!, "--config", _gateway.PolicyPath);
        Assert.Equal(0, replay.ExitCode);
        var orders = replay.Stdout.IndexOf("select count(*) from orders", StringComparison.Ordinal);
        var customers = replay.Stdout.IndexOf("select count(*) from customers", StringComparison.Ordinal);
        Assert.True(orders > 0 && customers > orders, replay.Stdout);
        Assert.Contains("grant.relation_not_granted", replay.Stdout);
        Assert.Equal(ExitCodes.Refused, (await Gatehouse("audit", "replay", "no-such-session", "--config", _gateway.PolicyPath)).ExitCode);
    }

    [Fact]
    public async Task An_access_request_may_name_whole_schemas_within_the_policys_longest_grant()
    {
        File.WriteAllText(_gateway.PolicyPath, File.ReadAllText(_gateway.PolicyPath) + "\napprovals:\n  max_grant: 2h\n");
        var gateway = TestGateway.Reload(_gateway);
        await using var client = await GatewayClients.StdioAsync(gateway, gateway.Mint("narrow"));
        Dictionary<string, object?> Request(string duration, params string[] schemas) => new()
        {
            ["connection"] = "shop",
            ["schemas"] = schemas,
            ["access"] = "read",
            ["reason"] = "month-end report",
            ["duration"] = duration,
        };

        Assert.Equal("request.bad_duration", (await client.CallToolAsync("request_access", Request("3h", "public"))).Rule());
        Assert.Equal("request.bad_tables", (await client.CallToolAsync("request_access", Request("1h", "pub lic"))).Rule());
        Assert.Equal("request.bad_tables", (await client.CallToolAsync("request_access", Request("1h", "\"Public\""))).Rule());
        var requested = await client.CallToolAsync("request_access", Request("1h", "public"));
        var id = requested.Structured().GetProperty("request_id").GetString()!;
        Assert.Equal("public", requested.Structured().GetProperty("schemas")[0].GetString());
        Assert.Equal(0, (await Gatehouse("approvals", "approve", id, "--config", gateway.PolicyPath, "--as", "alice")).ExitCode);
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from customers")).IsError);
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from payments")).IsError);
    }

    [Fact]
    public async Task Terminal_escapes_an_agent_writes_are_shown_escaped_not_obeyed()
    {
        await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("narrow"));
        var id = (await client.RequestAccessAsync(["public.customers"], "read", "month end\u001b[2K\u001b[1Gapproved by alice \u202Eecila")).Structured().GetProperty("request_id").GetString()!;

        var listed = await Gatehouse("approvals", "list", "--config", _gateway.PolicyPath);
        Assert.Contains(id, listed.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', listed.Stdout);
        Assert.Contains(@"month end\u001b[2K\u001b[1Gapproved by alice \u202eecila", listed.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain('\u202E', listed.Stdout);
        Assert.Equal(0, (await Gatehouse("approvals", "deny", id, "--config", _gateway.PolicyPath, "--as", "alice")).ExitCode);
    }

    [Fact]
    public async Task An_approved_access_request_widens_the_agents_access_until_it_expires()
    {
        await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("narrow"));
        Assert.Equal("grant.relation_not_granted", (await client.QueryAsync("select count(*) from customers")).Rule());

        var requested = await client.RequestAccessAsync(["public.customers"], "read", "count customers for the weekly report", "30m");
        var id = requested.Structured().GetProperty("request_id").GetString()!;
        Assert.Equal("pending", requested.Structured().GetProperty("status").GetString());

        var pending = await Gatehouse("approvals", "list", "--config", _gateway.PolicyPath);
        Assert.Contains(id, pending.Stdout);
        Assert.Contains("weekly report", pending.Stdout);

        var self = await Gatehouse("approvals", "approve", id, "--config", _gateway.PolicyPath, "--as", "narrow");
        Assert.Equal(ExitCodes.Refused, self.ExitCode);
        Assert.Contains("cannot decide it", self.Stderr);

        var approved = await Gatehouse("approvals", "approve", id, "--config", _gateway.PolicyPath, "--as", "alice", "--reason", "fine for a week");
        Assert.Equal(0, approved.ExitCode);
        Assert.Contains("may read public.customers", approved.Stdout);

        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from customers")).IsError);
        Assert.Equal("grant.relation_not_granted", (await client.QueryAsync("select count(*) from payments")).Rule());
        Assert.Equal(ExitCodes.Refused, (await Gatehouse("approvals", "deny", id, "--config", _gateway.PolicyPath, "--as", "bob")).ExitCode);

        // Revoked early: the next call is judged without the grant, and the revocation is on record.
        Assert.Contains(id, (await Gatehouse("grants", "list", "--config", _gateway.PolicyPath)).Stdout);
        Assert.Equal(0, (await Gatehouse("grants", "revoke", id, "--config", _gateway.PolicyPath, "--as", "alice")).ExitCode);
        Assert.Equal("grant.relation_not_granted", (await client.QueryAsync("select count(*) from customers")).Rule());
        Assert.DoesNotContain(id, (await Gatehouse("grants", "list", "--config", _gateway.PolicyPath)).Stdout);
        Assert.Equal(ExitCodes.Refused, (await Gatehouse("grants", "revoke", id, "--config", _gateway.PolicyPath, "--as", "alice")).ExitCode);
        Assert.Contains("approval.revoke", (await Gatehouse("audit", "list", "--config", _gateway.PolicyPath, "--agent", "alice")).Stdout);
    }

    [Fact]
    public async Task Classify_proposes_tags_for_the_shop_without_printing_any_sampled_value()
    {
        var (exitCode, stdout, stderr) = await Gatehouse("classify", "--config", _gateway.PolicyPath, "--connection", "shop", "--sample", "50");
        Assert.Equal(0, exitCode);
        Assert.Matches(@"public\.customers\.ssn:\s+ssn", stdout);
        Assert.Matches(@"public\.customers\.email:\s+email", stdout);
        Assert.Matches(@"public\.customers\.card_number:\s+card", stdout);
        Assert.Matches(@"public\.customers\.phone:\s+phone", stdout);
        Assert.DoesNotContain("public.orders.status", stdout);
        Assert.Contains("[1/", stderr);
        foreach (var raw in new[] { "536-22-4821", "amelia.hartmann@example.com", "4111111111111111", "+1 415 555 0134" })
        {
            Assert.DoesNotContain(raw, stdout + stderr);
        }
    }

    [Fact]
    public async Task A_state_store_that_does_not_answer_is_one_clear_line_not_a_stack_trace()
    {
        var unreachable = TestGateway.Create(pg, gateway: $"store:\n  postgres: \"Host=127.0.0.1;Port={TestGateway.FreePort()};Database=gatehouse_state;Username=gatehouse;Timeout=3\"");
        var (exitCode, stdout, stderr) = await Gatehouse("approvals", "list", "--config", unreachable.PolicyPath);
        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("gatehouse: database error: Failed to connect to 127.0.0.1:", line);
    }

    [Fact]
    public async Task Setup_refuses_an_admin_password_on_the_command_line_before_connecting()
    {
        var (exitCode, _, stderr) = await Gatehouse(
            "setup", "--config", _gateway.PolicyPath, "--connection", "shop", "--admin-connection", $"Host=127.0.0.1;Port={TestGateway.FreePort()};Username=postgres;Password=hunter2-admin");

        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Contains("--admin-connection holds a password", stderr);
        Assert.Contains("PGPASSWORD", stderr);
        Assert.DoesNotContain("hunter2-admin", stderr);
    }

    [Fact]
    public async Task Agents_can_be_disabled_and_listed_from_the_cli()
    {
        await using (var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("ops-bot")))
        {
            await client.QueryAsync("select 1");
        }

        Assert.Equal(0, (await Gatehouse("agents", "disable", "ops-bot", "--config", _gateway.PolicyPath)).ExitCode);
        var list = await Gatehouse("agents", "list", "--config", _gateway.PolicyPath);
        Assert.Matches(@"ops-bot\s+disabled", list.Stdout);
        var refused = await StdioTests.RunGatehouse(["serve", "--config", _gateway.PolicyPath], _gateway.Mint("ops-bot"));
        Assert.Equal(ExitCodes.Refused, refused.ExitCode);
        Assert.Contains("identity.agent_disabled", refused.Stderr);
        Assert.Equal(0, (await Gatehouse("agents", "enable", "ops-bot", "--config", _gateway.PolicyPath)).ExitCode);
    }
}
