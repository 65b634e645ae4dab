using System.Collections.Concurrent;
using System.Text.Json;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// Statement approvals through the real MCP path: a guardrail sends a statement to a human, the call waits with progress
/// notifications, approvers decide from the CLI, and the approved statement runs exactly once, never lost.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ApprovalTests(PostgresFixture pg)
{
    private const string Agents = GuardrailTests.Agents + """

          - id: customer-lists
            match: { tables: [public.customers], agents: [ops-bot] }
            outcome: require_approval
            message: Customer data needs a second pair of eyes
        """;

    private static TestGateway Gateway(PostgresFixture pg, string wait, int required = 1) =>
        TestGateway.Create(pg, Agents + $"\napprovals:\n  approvers: [alice, bob, carol]\n  required: {required}\n  wait: {wait}\n");

    private static Task<(int ExitCode, string Stdout, string Stderr)> Cli(TestGateway gateway, params string[] arguments) =>
        StdioTests.RunGatehouse([.. arguments, "--config", gateway.PolicyPath]);

    private static string PendingId(CallToolResult result)
    {
        Assert.True(result.Rule() == "approval.pending", result.Text());
        return result.Structured().GetProperty("pending_approval").GetProperty("request_id").GetString()!;
    }

    [Fact]
    public async Task A_statement_approved_after_a_policy_reload_is_judged_again_before_it_runs()
    {
        var gateway = Gateway(pg, "60s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var call = client.QueryAsync("select count(*) from customers");
        var id = await WaitForPendingAsync(gateway);

        // The policy changes while the call waits; then the approval comes.
        await File.WriteAllTextAsync(gateway.PolicyPath, (await File.ReadAllTextAsync(gateway.PolicyPath)).Replace("wait: 60s", "wait: 59s"));
        await OperationsTests.WaitForReloadAsync(server.State, "policy.reloaded", since: DateTimeOffset.MinValue);
        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "alice")).ExitCode);

        var first = await call.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("approval.policy_changed", first.Rule());
        Assert.Contains(id, first.Text());

        // Called again, it is judged under the policy in force, which still sends it for approval: this one.
        var again = await client.QueryAsync("select count(*) from customers");
        Assert.NotEqual(true, again.IsError);
        Assert.Equal(await pg.AdminScalarAsync("select count(*) from customers"), again.Structured().GetProperty("rows")[0][0].GetInt64());
    }

    [Fact]
    public async Task A_statement_approved_before_a_reload_that_asks_more_approvals_waits_for_the_rest()
    {
        // Approved by one when one was enough; after the policy asked two, its next call ran on that one approval.
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        const string Sql = "update payments set status = status where id = $1";
        var id = PendingId(await client.QueryAsync(Sql, [14]));
        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "alice")).ExitCode);

        await File.WriteAllTextAsync(gateway.PolicyPath, (await File.ReadAllTextAsync(gateway.PolicyPath)).Replace("required: 1", "required: 2"));
        await OperationsTests.WaitForReloadAsync(server.State, "policy.reloaded", since: DateTimeOffset.MinValue);

        var waiting = await client.QueryAsync(Sql, [14]);
        Assert.Equal(id, PendingId(waiting));
        Assert.Contains("1 of 2 approvals", waiting.Text());
        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "bob")).ExitCode);
        var ran = await client.QueryAsync(Sql, [14]);
        Assert.NotEqual(true, ran.IsError);
        Assert.Equal(1, ran.Structured().GetProperty("affected_rows").GetInt32());
    }

    [Fact]
    public async Task An_agent_disabled_while_its_statement_waits_is_refused_when_the_approval_comes()
    {
        var gateway = Gateway(pg, "60s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        const string Sql = "update payments set status = 'refunded' where id = $1 and status <> 'refunded'";
        var before = await pg.AdminScalarAsync("select status from payments where id = 9");
        var call = client.QueryAsync(Sql, [9]);
        var id = await WaitForPendingAsync(gateway);

        Assert.Equal(0, (await Cli(gateway, "agents", "disable", "ops-bot", "--as", "carol")).ExitCode);
        try
        {
            Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "alice")).ExitCode);
            var result = await call.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal("identity.agent_disabled", result.Rule());
            Assert.Contains("while this call waited for approval", result.Text(), StringComparison.Ordinal);
            Assert.Equal(before, await pg.AdminScalarAsync("select status from payments where id = 9"));
        }
        finally
        {
            Assert.Equal(0, (await Cli(gateway, "agents", "enable", "ops-bot", "--as", "carol")).ExitCode);
        }
    }

    [Theory]
    [InlineData("with gone as (delete from payments where id = $1 returning id) select count(*) from gone")]
    [InlineData("with gone as (delete from payments where id = $1 returning id) update payments set status = status where id = 1")]
    public async Task A_write_inside_a_with_query_that_needs_approval_is_refused_since_neither_its_dry_run_nor_its_run_can_count_it(string sql)
    {
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var before = await pg.AdminScalarAsync("select count(*) from payments");
        var refused = await client.QueryAsync(sql, [11]);
        Assert.Equal("guard.uncounted_write", refused.Rule());
        Assert.Contains("send each write as a statement of its own", refused.Text(), StringComparison.Ordinal);
        Assert.Equal(before, await pg.AdminScalarAsync("select count(*) from payments"));
    }

    [Fact]
    public async Task A_waiting_call_reports_progress_and_returns_the_result_once_an_approver_agrees()
    {
        var gateway = Gateway(pg, "60s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var progress = new Collected();
        var call = client.CallToolAsync("query", new Dictionary<string, object?> { ["connection"] = "shop", ["sql"] = "select count(*) from customers" }, progress).AsTask();

        var id = await WaitForPendingAsync(gateway);
        await WaitUntilAsync(() => !progress.Messages.IsEmpty);
        Assert.Contains(id, progress.Messages.First());
        Assert.Contains("alice or bob or carol", progress.Messages.First());

        var approved = await Cli(gateway, "approvals", "approve", id, "--as", "alice", "--reason", "routine count");
        Assert.Equal(0, approved.ExitCode);
        var result = await call.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual(true, result.IsError);
        Assert.Equal(await pg.AdminScalarAsync("select count(*) from customers"), result.Structured().GetProperty("rows")[0][0].GetInt64());

        var audit = await Cli(gateway, "audit", "list", "--agent", "alice");
        Assert.Contains("approval.approve", audit.Stdout);
    }

    [Fact]
    public async Task An_approval_after_the_wait_is_picked_up_by_the_next_call_exactly_once()
    {
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        const string Sql = "update payments set status = status where id = $1";
        var pending = await client.QueryAsync(Sql, [7]);
        var id = PendingId(pending);
        Assert.Contains("payments-by-hand", pending.Text());
        Assert.Equal(1, pending.Structured().GetProperty("pending_approval").GetProperty("dry_run_affected_rows").GetInt32());
        var sample = JsonDocument.Parse((await Cli(gateway, "approvals", "show", id)).Stdout).RootElement.GetProperty("dry_run_sample");
        Assert.Contains("status", sample.GetProperty("columns").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(7, sample.GetProperty("rows")[0][0].GetInt32());

        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "bob")).ExitCode);
        var ran = await client.QueryAsync(Sql, [7]);
        Assert.Equal(1, ran.Structured().GetProperty("affected_rows").GetInt32());

        var again = await client.QueryAsync(Sql, [7]);
        Assert.NotEqual(id, PendingId(again));
    }

    [Theory]
    [InlineData("nothing")]
    [InlineData("a grant")]
    [InlineData("a tag")]
    public async Task A_result_whose_caller_left_during_the_approved_run_is_kept_for_its_next_call_while_its_rights_hold(string changed)
    {
        var rightsChange = changed != "nothing";
        var gateway = TestGateway.Create(pg, Agents + "\napprovals:\n  approvers: [alice, bob, carol]\n  wait: 60s\n", connectionSettings: "masking: overlay");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        // Slow enough (a few seconds) that the caller is gone before it finishes.
        const string Slow = "select count(*) from customers, generate_series(1, 4000000)";
        using var leave = new CancellationTokenSource();
        var call = client.QueryAsync(Slow, cancellationToken: leave.Token);
        var id = await WaitForPendingAsync(gateway);
        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "alice")).ExitCode);
        // The caller leaves once its approved run has begun (its wait claims the approval at its next poll).
        for (var deadline = DateTime.UtcNow.AddSeconds(30);
             (await server.State.GetStatementAsync(id, DateTimeOffset.UtcNow, CancellationToken.None))!.Status != StatementApprovalStatus.Running;
             await Task.Delay(50))
        {
            Assert.True(DateTime.UtcNow < deadline, $"approval {id} was not claimed within 30 s of being approved");
        }

        await Task.Delay(TimeSpan.FromSeconds(0.5));
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        // The run finishes on its own and is recorded; its result waits for the agent.
        for (var i = 0; i < 100 && !(await Cli(gateway, "audit", "list", "--agent", "ops-bot")).Stdout.Contains("approval.approved", StringComparison.Ordinal); i++)
        {
            await Task.Delay(200);
        }

        if (rightsChange)
        {
            // A grant, or what the connection masks, changes before the agent comes back: what was kept was masked under
            // rights it no longer has exactly (a column tagged since would come back raw).
            var policy = await File.ReadAllTextAsync(gateway.PolicyPath);
            await File.WriteAllTextAsync(gateway.PolicyPath, changed == "a grant"
                ? policy.Replace("public.payments, public.observed_rows]", "public.payments]", StringComparison.Ordinal)
                : policy.Replace("    masking: overlay", "    masking: overlay\n    tags: { public.customers.email: email }", StringComparison.Ordinal));
            await OperationsTests.WaitForReloadAsync(server.State, "policy.reloaded", since: DateTimeOffset.MinValue);
        }

        var picked = await client.QueryAsync(Slow);
        if (rightsChange)
        {
            Assert.Equal("approval.rights_changed", picked.Rule());
            Assert.Contains("discarded, not handed over", picked.Text(), StringComparison.Ordinal);
            return;
        }

        Assert.Equal("approval.result", (await server.State.GetAsync(picked.AuditId(), CancellationToken.None))!.Rule);
        Assert.Equal(4000000L * (long)(await pg.AdminScalarAsync("select count(*) from customers"))!, picked.Structured().GetProperty("rows")[0][0].GetInt64());
    }

    [Fact]
    public async Task A_dry_run_counts_every_row_it_touches_while_sampling_only_a_few()
    {
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var pending = await client.QueryAsync("update payments set status = status where order_id <= $1", [30]);
        var expected = await pg.AdminScalarAsync("select count(*) from payments where order_id <= 30");
        Assert.Equal(expected, pending.Structured().GetProperty("pending_approval").GetProperty("dry_run_affected_rows").GetInt64());
        var sample = JsonDocument.Parse((await Cli(gateway, "approvals", "show", PendingId(pending))).Stdout).RootElement.GetProperty("dry_run_sample");
        Assert.Equal(3, sample.GetProperty("rows").GetArrayLength());
    }

    [Fact]
    public async Task A_different_statement_or_parameters_is_a_different_request()
    {
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var first = PendingId(await client.QueryAsync("delete from payments where id = $1", [5]));
        Assert.Equal(first, PendingId(await client.QueryAsync("DELETE  FROM payments WHERE id = $1", [5])));
        Assert.NotEqual(first, PendingId(await client.QueryAsync("delete from payments where id = $1", [6])));
        Assert.NotEqual(first, PendingId(await client.QueryAsync("delete from payments where id = $1 and true", [5])));

        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", first, "--as", "alice")).ExitCode);
        var other = await client.QueryAsync("delete from payments where id = $1", [6]);
        Assert.Equal("approval.pending", other.Rule());
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from payments where id = 6"));
    }

    [Fact]
    public async Task An_approved_statement_does_not_run_once_the_callers_grant_is_gone_and_request_access_reports_where_requests_stand()
    {
        var gateway = Gateway(pg, "0s");
        const string Sql = "update payments set status = 'failed' where id = $1";
        await using (var server = await HttpGateway.StartAsync(gateway))
        {
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
            var id = PendingId(await client.QueryAsync(Sql, [15]));
            var status = await client.CallToolAsync("request_access", new Dictionary<string, object?> { ["status_only"] = true });
            var listed = status.Structured().GetProperty("your_requests").EnumerateArray().Single(r => r.GetProperty("id").GetString() == id);
            Assert.Equal("pending", listed.GetProperty("status").GetString());
            Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "alice")).ExitCode);
        }

        // The admin takes the write grant away before the agent comes back for its approved statement.
        File.WriteAllText(gateway.PolicyPath, File.ReadAllText(gateway.PolicyPath).Replace("tables: [public.orders, public.payments, public.observed_rows]", "tables: [public.orders]", StringComparison.Ordinal));
        var narrowed = TestGateway.Reload(gateway);
        Assert.DoesNotContain(narrowed.Policy.Agents["ops-bot"].Grants, g => g.Tables.Any(t => t.Name == "payments") && g.Access == Gatehouse.Enforcement.Policy.AccessLevel.Write);
        await using var again = await HttpGateway.StartAsync(narrowed);
        await using var agent = await GatewayClients.HttpAsync(again.Endpoint, narrowed.Mint("ops-bot"));
        Assert.Equal("grant.relation_read_only", (await agent.QueryAsync(Sql, [15])).Rule());
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from payments where id = 15 and status = 'failed'"));
    }

    [Fact]
    public async Task An_approval_made_elsewhere_while_the_operators_form_is_open_ends_the_wait()
    {
        // The form held the wait: an approver's decision was not seen until the form timed out, and the wait then began again.
        var gateway = TestGateway.Create(pg, Agents + "\napprovals:\n  approvers: [alice, operator]\n  wait: 60s\n");
        var release = new TaskCompletionSource();
        var options = new McpClientOptions
        {
            Handlers = new McpClientHandlers
            {
                // An operator who does not answer; the client reads nothing else while its form is open.
                ElicitationHandler = async (_, _) =>
                {
                    await release.Task;
                    return new ElicitResult { Action = "cancel" };
                },
            },
        };
        await using var client = await GatewayClients.StdioAsync(gateway, gateway.Mint("ops-bot"), options: options);
        var call = client.QueryAsync("update payments set status = status where id = $1", [18]);
        var id = await WaitForPendingAsync(gateway);
        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "alice")).ExitCode);

        // The statement runs, and its call is on record as finished, while the operator's form is still open.
        var state = await Gatehouse.Connectors.State.SqliteStateStore.OpenAsync(gateway.Policy.Gateway.StatePath, CancellationToken.None);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!(await state.ListAsync(new AuditQuery(Tool: "query"), CancellationToken.None)).Any(r => r.Rule == "approval.approved"))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the approved statement did not run while the operator's form was open");
            await Task.Delay(100);
        }

        release.SetResult();
        var ran = await call.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, ran.Structured().GetProperty("affected_rows").GetInt32());
    }

    [Fact]
    public async Task The_agents_operator_may_approve_through_elicitation_when_the_policy_says_so()
    {
        var gateway = TestGateway.Create(pg, Agents + "\napprovals:\n  approvers: [alice, operator]\n  wait: 3s\n");
        var asked = new ConcurrentQueue<string>();
        McpClientOptions Answering(bool accept) => new()
        {
            Handlers = new McpClientHandlers
            {
                ElicitationHandler = (request, _) =>
                {
                    asked.Enqueue(request?.Message ?? "");
                    return ValueTask.FromResult(accept
                        ? new ElicitResult { Action = "accept", Content = new Dictionary<string, JsonElement> { ["approve"] = JsonSerializer.SerializeToElement(true), ["reason"] = JsonSerializer.SerializeToElement("I asked for this") } }
                        : new ElicitResult { Action = "decline" });
                },
            },
        };

        // Over stdio, whose session can ask the client; the operator is whoever answers the client's form.
        await using (var declining = await GatewayClients.StdioAsync(gateway, gateway.Mint("ops-bot"), options: Answering(accept: false)))
        {
            Assert.Equal("approval.pending", (await declining.QueryAsync("update payments set status = status where id = $1", [16])).Rule());
        }

        // The wait is also how long the operator has to answer: long enough for a fresh process on a busy machine to ask, be
        // answered and record the vote (the call returns as soon as the vote is in).
        var patient = TestGateway.Create(pg, Agents + "\napprovals:\n  approvers: [alice, operator]\n  wait: 30s\n");
        await using var approving = await GatewayClients.StdioAsync(patient, patient.Mint("ops-bot"), options: Answering(accept: true));
        var ran = await approving.QueryAsync("update payments set status = status where id = $1", [17]);
        Assert.Equal(1, ran.Structured().GetProperty("affected_rows").GetInt32());
        Assert.Contains(asked, m => m.Contains("update payments set status = status where id = $1", StringComparison.Ordinal) && m.Contains("[\"17\"]", StringComparison.Ordinal));
        var state = await Gatehouse.Connectors.State.SqliteStateStore.OpenAsync(patient.Policy.Gateway.StatePath, CancellationToken.None);
        var record = await state.GetAsync(ran.AuditId(), CancellationToken.None);
        Assert.Equal("approval.approved", record!.Rule);
        Assert.Contains("operator", record.Reason);

        // The operator's decision is a record of its own, as one made in the CLI or the console is.
        var decision = Assert.Single(await state.ListAsync(new AuditQuery(Tool: "approvals approve"), CancellationToken.None));
        Assert.Equal(("operator", "mcp-elicitation", "approval.approve", Verdict.Allowed), (decision.Agent, decision.Transport, decision.Rule, decision.Decision));
        Assert.Contains("Approved apr_", decision.Reason);
        Assert.Contains("Reason given: I asked for this", decision.Reason);
    }

    [Fact]
    public async Task Denied_and_cancelled_requests_say_so_and_nothing_runs()
    {
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var denied = PendingId(await client.QueryAsync("delete from payments where id = $1", [8]));
        Assert.Equal(0, (await Cli(gateway, "approvals", "deny", denied, "--as", "carol", "--reason", "refunds go through finance")).ExitCode);
        var refusal = await client.QueryAsync("delete from payments where id = $1", [8]);
        Assert.Equal("approval.denied", refusal.Rule());
        Assert.Contains("refunds go through finance", refusal.Text());

        var cancelled = PendingId(await client.QueryAsync("delete from payments where id = $1", [9]));
        Assert.Equal(0, (await Cli(gateway, "approvals", "cancel", cancelled, "--as", "carol")).ExitCode);
        Assert.Equal("approval.cancelled", (await client.QueryAsync("delete from payments where id = $1", [9])).Rule());
        Assert.Equal(ExitCodes.Refused, (await Cli(gateway, "approvals", "approve", cancelled, "--as", "alice")).ExitCode);
        Assert.Equal(2L, await pg.AdminScalarAsync("select count(*) from payments where id in (8, 9)"));
    }

    [Fact]
    public async Task With_no_approvers_named_the_requester_cannot_cancel_its_own_request_either_but_an_approver_who_voted_can()
    {
        // Anyone but the requester may decide then; cancelling checked only the approvers list, so the agent's own name could.
        var gateway = TestGateway.Create(pg, Agents + "\napprovals:\n  wait: 0s\n  required: 2\n");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var id = PendingId(await client.QueryAsync("delete from payments where id = $1", [12]));

        var self = await Cli(gateway, "approvals", "cancel", id, "--as", "ops-bot");

        Assert.Equal(ExitCodes.Refused, self.ExitCode);
        Assert.Contains("cannot decide it", self.Stderr);

        // Having approved (1 of 2), cancelling is how carol withdraws it.
        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "carol")).ExitCode);
        Assert.Equal(0, (await Cli(gateway, "approvals", "cancel", id, "--as", "carol")).ExitCode);
        Assert.Equal("approval.cancelled", (await client.QueryAsync("delete from payments where id = $1", [12])).Rule());
    }

    [Fact]
    public async Task The_requester_and_strangers_cannot_approve_and_two_of_three_approvers_are_needed_when_configured()
    {
        var gateway = Gateway(pg, "0s", required: 2);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        const string Sql = "update payments set status = status where id = $1";
        var id = PendingId(await client.QueryAsync(Sql, [10]));

        var self = await Cli(gateway, "approvals", "approve", id, "--as", "ops-bot");
        Assert.Equal(ExitCodes.Refused, self.ExitCode);
        Assert.Contains("cannot decide it", self.Stderr);
        var stranger = await Cli(gateway, "approvals", "approve", id, "--as", "mallory");
        Assert.Equal(ExitCodes.Refused, stranger.ExitCode);
        Assert.Contains("not one of this gateway's approvers", stranger.Stderr);

        Assert.Contains("1 of 2", (await Cli(gateway, "approvals", "approve", id, "--as", "alice")).Stdout);
        Assert.Equal(ExitCodes.Refused, (await Cli(gateway, "approvals", "approve", id, "--as", "alice")).ExitCode);
        Assert.Equal("approval.pending", (await client.QueryAsync(Sql, [10])).Rule());
        Assert.Contains("Approved", (await Cli(gateway, "approvals", "approve", id, "--as", "bob")).Stdout);
        Assert.Equal(1, (await client.QueryAsync(Sql, [10])).Structured().GetProperty("affected_rows").GetInt32());

        var shown = JsonDocument.Parse((await Cli(gateway, "approvals", "show", id)).Stdout).RootElement;
        Assert.Equal("used", shown.GetProperty("status").GetString());
        Assert.Equal(["alice", "bob"], shown.GetProperty("decisions").EnumerateArray().Select(d => d.GetProperty("approver").GetString()));
    }

    [Fact]
    public async Task The_person_an_agent_acts_for_cannot_approve_its_requests()
    {
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        var forAlice = gateway.Mint("ops-bot", claims: new Dictionary<string, object> { ["act"] = new Dictionary<string, object> { ["sub"] = "alice" } });
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, forAlice);
        var statement = PendingId(await client.QueryAsync("update payments set status = status where id = $1", [21]));
        var access = (await client.CallToolAsync("request_access", new Dictionary<string, object?>
        {
            ["connection"] = "shop",
            ["tables"] = new[] { "public.customers" },
            ["access"] = "write",
            ["reason"] = "fix a typo",
            ["duration"] = "1h",
        })).Structured().GetProperty("request_id").GetString()!;

        foreach (var id in new[] { statement, access })
        {
            var shown = JsonDocument.Parse((await Cli(gateway, "approvals", "show", id)).Stdout).RootElement;
            Assert.Equal("alice", shown.GetProperty("delegated_by").GetString());
            var refused = await Cli(gateway, "approvals", "approve", id, "--as", "alice");
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("is the person agent 'ops-bot' acts for", refused.Stderr, StringComparison.Ordinal);
            Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "bob")).ExitCode);
        }
    }

    [Fact]
    public async Task A_grant_asked_for_on_behalf_of_a_person_serves_only_calls_made_for_that_person()
    {
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        string For(string person) => gateway.Mint("analyst", claims: new Dictionary<string, object> { ["act"] = new Dictionary<string, object> { ["sub"] = person } });
        await using var forAlice = await GatewayClients.HttpAsync(server.Endpoint, For("alice"));
        var id = (await forAlice.RequestAccessAsync(["public.orders"], "write", "fix a note for alice")).Structured().GetProperty("request_id").GetString()!;
        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "bob")).ExitCode);
        const string Write = "update orders set note = note where id = 1";

        Assert.Equal(1, (await forAlice.QueryAsync(Write)).Structured().GetProperty("affected_rows").GetInt32());
        var listed = JsonDocument.Parse((await Cli(gateway, "grants", "list", "--json")).Stdout).RootElement.EnumerateArray().Single(g => g.GetProperty("id").GetString() == id);
        Assert.Equal("alice", listed.GetProperty("delegated_by").GetString());

        // Bob approved it for alice: the agent acting for bob, or on its own, does not hold it.
        await using var forBob = await GatewayClients.HttpAsync(server.Endpoint, For("bob"));
        Assert.Equal("grant.read_only", (await forBob.QueryAsync(Write)).Rule());
        await using var onItsOwn = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
        Assert.Equal("grant.read_only", (await onItsOwn.QueryAsync(Write)).Rule());
    }

    [Fact]
    public async Task An_approved_write_that_would_touch_more_rows_than_its_dry_run_is_rolled_back()
    {
        var gateway = Gateway(pg, "0s");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        const string Sql = "update payments set status = 'refunded' where order_id = $1";
        var before = (long)(await pg.AdminScalarAsync("select count(*) from payments where order_id = 2"))!;
        var pending = await client.QueryAsync(Sql, [2]);
        Assert.Equal(before, pending.Structured().GetProperty("pending_approval").GetProperty("dry_run_affected_rows").GetInt64());
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from payments where order_id = 2 and status = 'refunded'"));

        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", PendingId(pending), "--as", "alice")).ExitCode);
        var extra = await pg.AdminScalarAsync("insert into payments (order_id, amount, method, status) values (2, 1, 'card', 'captured') returning id");
        try
        {
            var refused = await client.QueryAsync(Sql, [2]);
            Assert.Equal("approval.rows_exceeded", refused.Rule());
            Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from payments where order_id = 2 and status = 'refunded'"));
        }
        finally
        {
            await pg.AdminScalarAsync($"delete from payments where id = {extra}");
        }
    }

    [Fact]
    public async Task Pending_requests_survive_a_restart_of_the_gateway()
    {
        var gateway = Gateway(pg, "0s");
        const string Sql = "update payments set status = status where id = $1";
        string id;
        await using (var first = await HttpGateway.StartAsync(gateway))
        {
            await using var client = await GatewayClients.HttpAsync(first.Endpoint, gateway.Mint("ops-bot"));
            id = PendingId(await client.QueryAsync(Sql, [11]));
        }

        Assert.Contains(id, (await Cli(gateway, "approvals", "list")).Stdout);
        Assert.Equal(0, (await Cli(gateway, "approvals", "approve", id, "--as", "carol")).ExitCode);
        await using var second = await HttpGateway.StartAsync(gateway);
        await using var again = await GatewayClients.HttpAsync(second.Endpoint, gateway.Mint("ops-bot"));
        Assert.Equal(1, (await again.QueryAsync(Sql, [11])).Structured().GetProperty("affected_rows").GetInt32());
    }

    [Fact]
    public async Task Approvers_hear_of_new_requests_and_decisions_by_signed_webhook_and_a_dead_webhook_blocks_nothing()
    {
        using var hook = new WebhookReceiver();
        var gateway = TestGateway.Create(pg, Agents + $"\napprovals:\n  approvers: [alice]\n  wait: 0s\n  webhook:\n    url: {hook.Url}\n    secret_file: hook.secret\n");
        File.WriteAllText(Path.Combine(gateway.Directory, "hook.secret"), "s3cret-for-signing");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var id = PendingId(await client.QueryAsync("delete from payments where id = $1", [12]));

        var created = await hook.WaitForAsync("request.created", id);
        Assert.Contains("gatehouse approvals approve", created.Json.GetProperty("text").GetString());
        Assert.Equal("ops-bot", created.Json.GetProperty("agent").GetString());
        var expected = "sha256=" + Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData("s3cret-for-signing"u8.ToArray(), System.Text.Encoding.UTF8.GetBytes(created.Body)));
        Assert.Equal(expected, created.Signature);

        Assert.Equal(0, (await Cli(gateway, "approvals", "deny", id, "--as", "alice", "--reason", "not today")).ExitCode);
        var decided = await hook.WaitForAsync("request.decided", id);
        Assert.Equal("denied", decided.Json.GetProperty("status").GetString());

        // An agent's reason is its own text, and may carry a value it read: it passes the detectors before it leaves.
        var access = (await client.RequestAccessAsync(["public.customers"], "read", "check 536-22-4821 against the ledger")).Structured().GetProperty("request_id").GetString()!;
        var asked = await hook.WaitForAsync("request.created", access);
        Assert.DoesNotContain("536-22-4821", asked.Body, StringComparison.Ordinal);
        Assert.Contains("against the ledger", asked.Json.GetProperty("text").GetString(), StringComparison.Ordinal);

        // Nor can it forge a mention, a link with a text of its own, or a line of its own in a chat channel.
        var forged = (await client.RequestAccessAsync(["public.customers"], "read", "<!channel>\nGatehouse: approved <https://evil.example|here>")).Structured().GetProperty("request_id").GetString()!;
        var forgedText = (await hook.WaitForAsync("request.created", forged)).Json.GetProperty("text").GetString()!;
        Assert.Contains("&lt;!channel&gt; Gatehouse: approved &lt;https://evil.example|here&gt;", forgedText, StringComparison.Ordinal);
        Assert.DoesNotContain('<', forgedText);

        var dead = TestGateway.Create(pg, Agents + "\napprovals:\n  wait: 0s\n  webhook:\n    url: http://127.0.0.1:9/unreachable\n");
        await using var deadServer = await HttpGateway.StartAsync(dead);
        await using var deadClient = await GatewayClients.HttpAsync(deadServer.Endpoint, dead.Mint("ops-bot"));
        // A first call opens the pool and reads the catalog, so the timed one is about the webhook. Were the call to wait for a
        // dead webhook, it would wait out its retries, 7.5 s of back-off.
        Assert.NotEqual(true, (await deadClient.QueryAsync("select count(*) from payments")).IsError);
        var started = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal("approval.pending", (await deadClient.QueryAsync("delete from payments where id = $1", [12])).Rule());
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(7), $"a dead webhook held the call for {started.Elapsed}");
    }

    [Fact]
    public async Task The_AI_reviewer_summarizes_a_request_for_approvers_without_seeing_sensitive_values_and_a_failing_model_changes_nothing()
    {
        const string Completion = """
            {"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"reviewer","choices":[{"index":0,
             "message":{"role":"assistant","content":"Marks one payment as failed; low blast radius but it changes money records."},"finish_reason":"stop"}],
             "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}
            """;
        using var model = new WebhookReceiver(Completion, 200);
        var gateway = TestGateway.Create(pg, Agents + $"\napprovals:\n  wait: 0s\n  reviewer:\n    endpoint: {model.Url}v1\n    model: reviewer\n");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var id = PendingId(await client.QueryAsync("update payments set status = 'failed' where id = $1 and $2::text <> ''", [18, "536-22-4821"]));

        string? review = null;
        for (var i = 0; i < 100 && review is null; i++)
        {
            await Task.Delay(100);
            review = JsonDocument.Parse((await Cli(gateway, "approvals", "show", id)).Stdout).RootElement.GetProperty("review").GetString();
        }

        Assert.Equal("Marks one payment as failed; low blast radius but it changes money records.", review);
        var asked = Assert.Single(model.Bodies);
        Assert.Contains("update payments set status", asked);
        Assert.DoesNotContain("536-22-4821", asked);

        using var broken = new WebhookReceiver("{\"error\":\"overloaded\"}", 500);
        var failing = TestGateway.Create(pg, Agents + $"\napprovals:\n  wait: 0s\n  reviewer:\n    endpoint: {broken.Url}v1\n    model: reviewer\n    timeout: 2s\n");
        await using var failingServer = await HttpGateway.StartAsync(failing);
        await using var failingClient = await GatewayClients.HttpAsync(failingServer.Endpoint, failing.Mint("ops-bot"));
        Assert.Equal("approval.pending", (await failingClient.QueryAsync("update payments set status = status where id = $1", [18])).Rule());
    }

    private static async Task<string> WaitForPendingAsync(TestGateway gateway)
    {
        for (var i = 0; i < 100; i++)
        {
            var listed = JsonDocument.Parse((await Cli(gateway, "approvals", "list", "--json")).Stdout).RootElement.GetProperty("statements");
            if (listed.GetArrayLength() > 0)
            {
                return listed[0].GetProperty("id").GetString()!;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("no statement request appeared");
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 100 && !condition(); i++)
        {
            await Task.Delay(100);
        }

        Assert.True(condition());
    }

    /// <summary>A real HTTP endpoint on loopback that records what the gateway posts to it.</summary>
    [Fact]
    public async Task A_webhook_that_redirects_is_not_followed_so_the_signed_event_stays_where_the_policy_sent_it()
    {
        using var elsewhere = new WebhookReceiver();
        using var bouncer = new WebhookReceiver(status: 307, location: elsewhere.Url);
        await using var notifier = new Gatehouse.Connectors.Webhooks.WebhookNotifier(
            new WebhookSettings(new Uri(bouncer.Url), SecretSource.None), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        notifier.Publish(new ApprovalEvent("request.created", "apr_1", "statement", "analyst", "shop", "pending", "delete from orders", DateTimeOffset.UtcNow, "text"));

        // The redirect counts as a failure and is retried (after half a second); followed, the first attempt would have
        // reached the other receiver at once.
        for (var i = 0; i < 100 && bouncer.Bodies.Count < 2; i++)
        {
            await Task.Delay(50);
        }

        Assert.True(bouncer.Bodies.Count >= 2, $"the webhook was tried {bouncer.Bodies.Count} time(s)");
        Assert.Empty(elsewhere.Bodies);
    }

    private sealed class WebhookReceiver : IDisposable
    {
        private readonly System.Net.HttpListener _listener = new();
        private readonly ConcurrentQueue<(string Body, string? Signature)> _received = new();
        private readonly string? _reply;
        private readonly int _status;
        private readonly string? _location;

        /// <param name="reply">A JSON body to answer every request with (a fake model endpoint); none by default.</param>
        public WebhookReceiver(string? reply = null, int status = 204, string? location = null)
        {
            _reply = reply;
            _status = status;
            _location = location;
            var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            probe.Start();
            var port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Url = $"http://127.0.0.1:{port}/hook/";
            _listener.Prefixes.Add(Url);
            _listener.Start();
            _ = Task.Run(ServeAsync);
        }

        public string Url { get; }

        public async Task<(string Body, JsonElement Json, string? Signature)> WaitForAsync(string eventName, string requestId)
        {
            for (var i = 0; i < 100; i++)
            {
                foreach (var (body, signature) in _received)
                {
                    var json = JsonDocument.Parse(body).RootElement;
                    if (json.GetProperty("event").GetString() == eventName && json.GetProperty("request_id").GetString() == requestId)
                    {
                        return (body, json, signature);
                    }
                }

                await Task.Delay(100);
            }

            throw new TimeoutException($"no {eventName} for {requestId} reached the webhook");
        }

        public IReadOnlyList<string> Bodies => _received.Select(r => r.Body).ToList();

        public void Dispose() => _listener.Close();

        private async Task ServeAsync()
        {
            while (_listener.IsListening)
            {
                System.Net.HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is System.Net.HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                using var reader = new StreamReader(context.Request.InputStream);
                _received.Enqueue((await reader.ReadToEndAsync(), context.Request.Headers["X-Gatehouse-Signature"]));
                context.Response.StatusCode = _status;
                if (_location is not null)
                {
                    context.Response.RedirectLocation = _location;
                }

                if (_reply is not null)
                {
                    context.Response.ContentType = "application/json";
                    await context.Response.OutputStream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(_reply));
                }

                context.Response.Close();
            }
        }
    }

    private sealed class Collected : IProgress<ProgressNotificationValue>
    {
        public ConcurrentQueue<string> Messages { get; } = new();

        public void Report(ProgressNotificationValue value) => Messages.Enqueue(value.Message ?? "");
    }
}
