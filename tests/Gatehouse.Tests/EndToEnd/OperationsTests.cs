using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;
using Npgsql;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>Operating a running gateway: policy hot reload, password rotation under load, SIGHUP and SIGTERM.</summary>
[Collection(PostgresCollection.Name)]
public sealed class OperationsTests(PostgresFixture pg)
{
    [Fact]
    public async Task A_policy_change_decides_the_next_call_and_a_bad_one_leaves_the_policy_in_force()
    {
        var gateway = TestGateway.Create(pg);
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var narrow = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("narrow"));
        Assert.NotEqual(true, (await narrow.QueryAsync("select count(*) from orders")).IsError);
        var original = await File.ReadAllTextAsync(gateway.PolicyPath);

        // Not a valid policy: refused with the file and line, recorded, and the policy in force stays.
        await File.WriteAllTextAsync(gateway.PolicyPath, original + "\nlimits_typo: 1\n");
        var invalid = await WaitForReloadAsync(http.State, "policy.reload_refused", since: DateTimeOffset.MinValue);
        Assert.Matches(@"gatehouse\.yaml:\d+:\d+: .*limits_typo", invalid.Reason);
        Assert.Contains(gateway.Policy.Hash, invalid.Reason);
        Assert.NotEqual(true, (await narrow.QueryAsync("select count(*) from orders")).IsError);

        // Valid: the narrow agent's table changes, from the next call on, recorded with the new version's hash.
        var narrower = original.Replace("tables: [public.orders]", "tables: [public.payments]");
        await File.WriteAllTextAsync(gateway.PolicyPath, narrower);
        var applied = await WaitForReloadAsync(http.State, "policy.reloaded", since: invalid.Time);
        Assert.Equal(PolicyLoader.HashOf(narrower), applied.Classification);
        var refused = await narrow.QueryAsync("select count(*) from orders");
        Assert.True(refused.IsError);
        Assert.StartsWith("grant.", refused.Rule());

        // A setting bound at start (the connection's address) is refused until a restart: the narrower policy stays.
        await File.WriteAllTextAsync(gateway.PolicyPath, narrower.Replace("Pooling=true", "Pooling=true;Timeout=9"));
        var bound = await WaitForReloadAsync(http.State, "policy.reload_refused", since: applied.Time);
        Assert.Contains("connections.shop", bound.Reason);
        Assert.Contains("only a restart applies", bound.Reason);
        Assert.StartsWith("grant.", (await narrow.QueryAsync("select count(*) from orders")).Rule());
    }

    [Fact]
    public async Task Raising_max_sql_length_by_reload_raises_the_request_body_limit_with_it()
    {
        var gateway = TestGateway.Create(pg, gateway: "limits: { max_sql_length: 65536 }");
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var analyst = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        // 500,000 characters the client sends escaped (\u00e9, 6 bytes each): a 3 MB body, past the 2 MB the gateway
        // started with. Sent asking first, so the refusal is heard before the body is (the server closes the connection on it).
        var sql = $"select length('{new string('é', 500_000)}')";
        // However long the gateway takes to answer, the body waits for it (by default it is sent after a second).
        using var plain = new HttpClient(new SocketsHttpHandler { Expect100ContinueTimeout = TimeSpan.FromMinutes(1) });
        using var request = new HttpRequestMessage(HttpMethod.Post, http.Endpoint)
        {
            Content = new StringContent(
                System.Text.Json.JsonSerializer.Serialize(new { jsonrpc = "2.0", id = 1, method = "tools/call", @params = new { name = "query", arguments = new { connection = "shop", sql } } }),
                System.Text.Encoding.UTF8,
                "application/json"),
        };
        request.Headers.Authorization = new("Bearer", gateway.Mint("analyst"));
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.ExpectContinue = true;
        using (var tooLarge = await plain.SendAsync(request))
        {
            Assert.Equal(System.Net.HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        }

        await File.WriteAllTextAsync(gateway.PolicyPath, (await File.ReadAllTextAsync(gateway.PolicyPath)).Replace("max_sql_length: 65536", "max_sql_length: 1048576"));
        await WaitForReloadAsync(http.State, "policy.reloaded", since: DateTimeOffset.MinValue);

        var answered = await analyst.QueryAsync(sql);
        Assert.Equal(500_000, answered.Structured().GetProperty("rows")[0][0].GetInt32());
    }

    [Fact]
    public async Task Fixing_a_misspelt_tag_by_reload_lets_the_connection_serve_again()
    {
        var gateway = TestGateway.Create(pg, connectionSettings: "masking: overlay\ntags: { public.customers.e_mail: email }");
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var analyst = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        Assert.Equal("masking.tags_out_of_sync", (await analyst.QueryAsync("select id from customers")).Rule());

        await File.WriteAllTextAsync(gateway.PolicyPath, (await File.ReadAllTextAsync(gateway.PolicyPath)).Replace("public.customers.e_mail", "public.customers.email"));
        await WaitForReloadAsync(http.State, "policy.reloaded", since: DateTimeOffset.MinValue);

        Assert.NotEqual(true, (await analyst.QueryAsync("select id from customers")).IsError);
    }

    [Fact]
    public async Task A_password_rotated_under_load_fails_no_call_and_leaves_no_connection_on_the_old_one()
    {
        var role = "rot_" + Guid.NewGuid().ToString("N")[..8];
        await pg.AdminScalarAsync($"CREATE ROLE {role} LOGIN PASSWORD 'first-password' IN ROLE {pg.GatewayRole}");
        var gateway = TestGateway.Create(pg.GatewayConnectionString.Replace($"Username={pg.GatewayRole}", $"Username={role}"), "first-password");
        var passwordFile = Path.Combine(gateway.Directory, "shop.password");
        await using var http = await HttpGateway.StartAsync(gateway);

        var calls = 0;
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var agents = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"))));
        var load = agents.Select(agent => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var result = await agent.QueryAsync("select count(*) from orders");
                Interlocked.Increment(ref calls);
                if (result.IsError == true)
                {
                    failures.Enqueue($"{result.Rule()}: {result.Text()}");
                }
            }
        })).ToList();
        await Task.Delay(TimeSpan.FromSeconds(1));

        // The worst order: the gateway is told to drain while PostgreSQL still expects the old password, so new logins
        // are refused until the database catches up a moment later. The gateway retries them; no call fails.
        var beforeRotation = (DateTime)(await pg.AdminScalarAsync("SELECT now()::timestamp"))!;
        await File.WriteAllTextAsync(passwordFile, "second-password");
        await http.State.RequestRotationAsync("shop", "test", CancellationToken.None);
        var stale = $"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}' AND backend_start < '{beforeRotation:O}'::timestamp";
        for (var i = 0; i < 40 && (long)(await pg.AdminScalarAsync(stale))! > 0; i++)
        {
            await Task.Delay(100);
        }

        // Drained: every call now needs a new login, which PostgreSQL refuses for a moment yet (refusals began with the drain;
        // the gateway retries a login for about four seconds, which a busy machine's slower polls here must leave room in).
        await Task.Delay(TimeSpan.FromMilliseconds(200));
        await pg.AdminScalarAsync($"ALTER ROLE {role} PASSWORD 'second-password'");
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stop.CancelAsync();
        await Task.WhenAll(load);
        foreach (var agent in agents)
        {
            await agent.DisposeAsync();
        }

        Assert.Empty(failures);
        Assert.True(calls > 20, $"only {calls} calls were made");
        Assert.Equal(0L, await pg.AdminScalarAsync(stale));
        Assert.True((long)(await pg.AdminScalarAsync($"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"))! > 0, "the gateway holds connections logged in with the new password");
    }

    [Fact]
    public async Task Without_a_password_setting_the_password_comes_from_a_libpq_passfile()
    {
        var gateway = TestGateway.Create(pg);
        var passfile = Path.Combine(gateway.Directory, "pgpass");
        await File.WriteAllTextAsync(passfile, $"{pg.Host}:{pg.Port}:{pg.Database}:{pg.GatewayRole}:{pg.GatewayPassword}\n");
        File.SetUnixFileMode(passfile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var policy = (await File.ReadAllTextAsync(gateway.PolicyPath)).Replace("    password_file: shop.password\n", "").Replace("Pooling=true", $"Pooling=true;Passfile={passfile}");
        Assert.DoesNotContain("password_file", policy);
        await File.WriteAllTextAsync(gateway.PolicyPath, policy);
        File.Delete(Path.Combine(gateway.Directory, "shop.password"));

        gateway = TestGateway.Reload(gateway);
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from orders")).IsError);
    }

    [Fact]
    public async Task Connections_rotate_refuses_a_password_that_does_not_log_in_and_otherwise_asks_every_gateway_to_drain()
    {
        var gateway = TestGateway.Create(pg);
        await gateway.CreateStateAsync();
        var passwordFile = Path.Combine(gateway.Directory, "shop.password");
        await File.WriteAllTextAsync(passwordFile, "not-the-password");

        var (exitCode, stdout, stderr) = await StdioTests.RunGatehouse(["connections", "rotate", "shop", "--config", gateway.PolicyPath, "--as", "dba"]);
        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Contains("does not log in", stderr);
        Assert.Contains("nothing was drained", stderr);
        Assert.DoesNotContain("not-the-password", stderr + stdout);

        await File.WriteAllTextAsync(passwordFile, pg.GatewayPassword);
        (exitCode, stdout, stderr) = await StdioTests.RunGatehouse(["connections", "rotate", "shop", "--config", gateway.PolicyPath, "--as", "dba"]);
        Assert.True(exitCode == ExitCodes.Ok, stderr);

        // A variable cannot change under a running gateway: rotating one is refused with what to do instead.
        var fromEnvironment = Path.Combine(gateway.Directory, "from-environment.yaml");
        await File.WriteAllTextAsync(fromEnvironment, (await File.ReadAllTextAsync(gateway.PolicyPath)).Replace("password_file: shop.password", "password_env: SHOP_PASSWORD"));
        var (refusedCode, _, refused) = await StdioTests.RunGatehouse(["connections", "rotate", "shop", "--config", fromEnvironment]);
        Assert.Equal(ExitCodes.Error, refusedCode);
        Assert.Contains("restart the gateways with the new value", refused);
        Assert.Contains("drains its pool within a second (rotation 1)", stdout);

        var (_, state) = await Gatehouse.McpServer.Cli.CliApp.LoadGatewayAsync(gateway.PolicyPath, CancellationToken.None);
        Assert.Equal(1L, (await state.Store.RotationsAsync(CancellationToken.None))["shop"]);
        var recorded = Assert.Single(await state.Audit.ListAsync(new AuditQuery(Tool: "connections rotate"), CancellationToken.None));
        Assert.Equal(("dba", "connection.rotate", "shop"), (recorded.Agent, recorded.Rule, recorded.Classification));
    }

    [Fact]
    public async Task A_served_gateway_connects_to_its_database_as_it_starts_before_any_probe_or_call()
    {
        // Start-up's readiness check runs while the endpoints are mapped: by the first /readyz the pool is open.
        var application = "gatehouse-start-" + Guid.NewGuid().ToString("N")[..8];
        var gateway = TestGateway.Create($"{pg.GatewayConnectionString};Application Name={application}", pg.GatewayPassword);
        await using var served = await ServedGateway.StartAsync(gateway, untilReady: false);
        await using var admin = new NpgsqlConnection(pg.AdminConnectionString);
        await admin.OpenAsync();
        var backends = 0L;
        for (var i = 0; i < 100 && backends == 0; i++)
        {
            await Task.Delay(100);
            await using var count = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", admin) { Parameters = { new() { Value = application } } };
            backends = (long)(await count.ExecuteScalarAsync())!;
        }

        Assert.True(backends > 0, $"no connection named {application} reached PostgreSQL within 10 s of the gateway answering /healthz");
    }

    [Fact]
    public async Task A_served_process_reloads_on_SIGHUP_and_on_SIGTERM_finishes_the_call_in_flight_before_it_exits()
    {
        var since = await ServerNowAsync();
        var gateway = TestGateway.Create(pg, connectionSettings: "functions: [pg_sleep]");
        await using var served = await ServedGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(served.Endpoint, gateway.Mint("analyst"));
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from orders")).IsError);

        // SIGHUP: a reload (pools drained), and the process goes on serving; by default the signal would end it.
        served.Signal("HUP");
        await served.WaitForLogAsync("after a SIGHUP");
        Assert.False(served.Process.HasExited);
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from orders")).IsError);

        // SIGTERM while a call runs: the call finishes and is answered, then the process stops cleanly.
        var inFlight = client.QueryAsync("select pg_sleep(1.5), count(*) from orders");
        await WaitUntilSleepingAsync(since);
        served.Signal("TERM");
        Assert.NotEqual(true, (await inFlight).IsError);
        Assert.Equal(0, await served.ExitCodeAsync());
        await served.WaitForLogAsync("Stopped: every call in flight finished and was recorded");
    }

    [Fact]
    public async Task On_SIGTERM_a_call_past_the_shutdown_deadline_is_cut_off_and_recorded_as_such()
    {
        var since = await ServerNowAsync();
        var gateway = TestGateway.Create(pg, gateway: "shutdown_deadline: 1s", connectionSettings: "functions: [pg_sleep]");
        await using var served = await ServedGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(served.Endpoint, gateway.Mint("analyst"));

        var inFlight = client.QueryAsync("select pg_sleep(10), count(*) from orders");
        await WaitUntilSleepingAsync(since);
        served.Signal("TERM");
        var cut = await inFlight;
        Assert.True(cut.IsError == true, $"the call ran to its end ({cut.Text()}); the gateway logged:\n{string.Join("\n", served.Log)}");
        Assert.Equal("gateway.shutdown", cut.Rule());
        Assert.Equal(0, await served.ExitCodeAsync());
        await served.WaitForLogAsync("1 call(s) were still running at the deadline and were cut off");

        var (_, state) = await Gatehouse.McpServer.Cli.CliApp.LoadGatewayAsync(gateway.PolicyPath, CancellationToken.None);
        var record = await state.Audit.GetAsync(cut.AuditId(), CancellationToken.None);
        Assert.Equal((Verdict.Failed, "gateway.shutdown"), (record!.Decision, record.Rule));
    }

    private async Task<string> ServerNowAsync() => ((DateTime)(await pg.AdminScalarAsync("select now()"))!).ToString("O");

    // Until a connection the test's gateway opened (the tests on this server run one at a time) sleeps in pg_sleep for an
    // agent's call: the call is in flight, past the gateway's door, however long a busy machine took to get it there. A fixed
    // wait could signal first, and the call would be refused as shutting_down.
    private async Task WaitUntilSleepingAsync(string since)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(30); ; await Task.Delay(50))
        {
            var sleeping = (long)(await pg.AdminScalarAsync(
                "select count(*) from pg_stat_activity where application_name = 'gatehouse:analyst' and wait_event = 'PgSleep'"
                + $" and backend_start >= '{since}'::timestamptz"))!;
            if (sleeping > 0)
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, "no call of the gateway was in pg_sleep within 30 s");
        }
    }

    // Reloads are noticed within the watcher's settle time, or the poll at worst.
    internal static async Task<AuditRecord> WaitForReloadAsync(Gatehouse.Connectors.State.SqlStateStore state, string rule, DateTimeOffset since)
    {
        for (var i = 0; i < 60; i++)
        {
            var records = await state.ListAsync(new AuditQuery(Tool: "policy reload"), CancellationToken.None);
            if (records.FirstOrDefault(r => r.Rule == rule && r.Time > since) is { } found)
            {
                return found;
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"no '{rule}' audit record appeared");
    }
}

/// <summary><c>gatehouse serve --http</c> as its own process on a free port, killed on dispose if still running.</summary>
internal sealed class ServedGateway : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _log = new();

    private ServedGateway(Process process) => Process = process;

    public Process Process { get; }

    public IEnumerable<string> Log => _log;

    public Uri Endpoint { get; private set; } = null!;

    /// <param name="untilReady">Returns once /readyz answers ready; otherwise once /healthz answers, with no readiness probe sent.</param>
    /// <param name="environment">Variables set for the process, on top of the test's own.</param>
    public static async Task<ServedGateway> StartAsync(TestGateway gateway, bool untilReady = true, IReadOnlyDictionary<string, string>? environment = null)
    {
        // Port 0: the gateway binds a port nobody holds and names it in its start-up line. A port found free and bound later
        // can be taken meanwhile, by another test's gateway too, whose probes would then answer for this one.
        var start = new ProcessStartInfo(GatewayClients.GatehouseBinary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "serve", "--http", "127.0.0.1:0", "--config", gateway.PolicyPath })
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var served = new ServedGateway(Process.Start(start)!);
        served.Process.ErrorDataReceived += (_, e) => served._log.Enqueue(e.Data ?? "");
        served.Process.OutputDataReceived += (_, e) => served._log.Enqueue(e.Data ?? "");
        served.Process.BeginErrorReadLine();
        served.Process.BeginOutputReadLine();
        await served.WaitUntilAsync(() => Task.FromResult(served.Listening() is not null), "the gateway said where it listens");
        served.Endpoint = served.Listening()!;
        using var probe = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(served.Endpoint.GetLeftPart(UriPartial.Authority)) };
        await served.WaitUntilAsync(async () => await AnswersAsync(probe, untilReady ? Health.ReadyPath : Health.LivePath), untilReady ? "the gateway became ready" : "the gateway answered");
        return served;
    }

    private Uri? Listening() =>
        _log.Select(line => Regex.Match(line, @"MCP over HTTP at (http://127\.0\.0\.1:\d+/mcp)")).FirstOrDefault(m => m.Success) is { } found
            ? new Uri(found.Groups[1].Value)
            : null;

    public void Signal(string signal) => Process.Start(new ProcessStartInfo("kill", ["-" + signal, Process.Id.ToString()]))!.WaitForExit();

    public Task WaitForLogAsync(string text) => WaitUntilAsync(() => Task.FromResult(_log.Any(l => l.Contains(text, StringComparison.Ordinal))), $"the gateway logged '{text}'");

    public async Task<int> ExitCodeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        await Process.WaitForExitAsync(timeout.Token);
        return Process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited)
        {
            Process.Kill();
            await Process.WaitForExitAsync();
        }

        Process.Dispose();
    }

    private static async Task<bool> AnswersAsync(HttpClient probe, string path)
    {
        try
        {
            using var response = await probe.GetAsync(path);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        for (var i = 0; i < 120; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(250);
        }

        Assert.Fail($"timed out waiting until {what}; the gateway logged:\n{string.Join("\n", _log)}");
    }
}
