using System.Net;
using System.Text;
using System.Text.Json;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>Running the audit log: retention in the background, the live JSON-lines sink, export, and OpenTelemetry export.</summary>
[Collection(PostgresCollection.Name)]
public sealed class AuditOperationsTests(PostgresFixture pg)
{
    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (await probe() is { } found)
            {
                return found;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"gave up waiting for {what}");
    }

    private static async Task SeedAsync(SqliteStateStore store, string agent, DateTimeOffset time)
    {
        var record = new AuditRecord { Id = AuditRecord.NewId(), Time = time, Tool = "query", Transport = "test", Agent = agent, Decision = Verdict.Allowed, Rule = "r", Reason = "seeded" };
        await store.BeginAsync(record with { Decision = Verdict.Started }, CancellationToken.None);
        await store.CompleteAsync(record, CancellationToken.None);
    }

    [Fact]
    public async Task The_retention_job_purges_old_records_in_the_background_and_the_chain_still_verifies()
    {
        var gateway = TestGateway.Create(pg, gateway: "audit:\n  retention:\n    max_age: 1h\n    every: 1s");
        var store = await SqliteStateStore.OpenAsync(gateway.Policy.Gateway.StatePath, CancellationToken.None);
        for (var i = 0; i < 3; i++)
        {
            await SeedAsync(store, "old-agent", DateTimeOffset.UtcNow.AddDays(-2).AddSeconds(i));
        }

        await SeedAsync(store, "recent-agent", DateTimeOffset.UtcNow);
        await using (var server = await HttpGateway.StartAsync(gateway))
        {
            await EventuallyAsync(
                async () => (await store.ListAsync(new AuditQuery(Agent: "old-agent"), CancellationToken.None)).Count == 0 ? "purged" : null,
                "the retention job to purge the old records");
        }

        Assert.Single(await store.ListAsync(new AuditQuery(Agent: "recent-agent"), CancellationToken.None));
        var verify = await StdioTests.RunGatehouse(["audit", "verify", "--config", gateway.PolicyPath]);
        Assert.Equal(0, verify.ExitCode);
        Assert.Contains("Intact: 1 sealed record(s)", verify.Stdout);
    }

    [Fact]
    public async Task Retention_measures_age_by_the_stores_clock_not_by_a_fast_one_in_the_purging_process()
    {
        // A process whose clock ran three hours fast cut at "now - max_age" by its clock, and took records the policy keeps.
        var gateway = TestGateway.Create(pg, gateway: "audit:\n  retention:\n    max_age: 1h\n    every: 1s");
        var store = await SqliteStateStore.OpenAsync(gateway.Policy.Gateway.StatePath, CancellationToken.None);
        await SeedAsync(store, "old-agent", DateTimeOffset.UtcNow.AddHours(-3));
        await SeedAsync(store, "recent-agent", DateTimeOffset.UtcNow.AddMinutes(-30));

        using var job = new AuditRetentionJob(gateway.Policy, store, new ClockAhead(TimeSpan.FromHours(3)), Microsoft.Extensions.Logging.Abstractions.NullLogger<AuditRetentionJob>.Instance);
        await job.StartAsync(CancellationToken.None);
        await EventuallyAsync(
            async () => (await store.ListAsync(new AuditQuery(Agent: "old-agent"), CancellationToken.None)).Count == 0 ? "purged" : null,
            "the retention job to purge the record three hours old");
        await job.StopAsync(CancellationToken.None);

        Assert.Single(await store.ListAsync(new AuditQuery(Agent: "recent-agent"), CancellationToken.None));
    }

    private sealed class ClockAhead(TimeSpan by) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + by;
    }

    [Fact]
    public async Task Admin_actions_taken_from_the_cli_and_purges_are_recorded_and_reach_the_sink()
    {
        var gateway = TestGateway.Create(pg, gateway: "audit:\n  sink: siem/audit.jsonl");
        var store = await SqliteStateStore.OpenAsync(gateway.Policy.Gateway.StatePath, CancellationToken.None);
        await SeedAsync(store, "old-agent", DateTimeOffset.UtcNow.AddDays(-2));

        Assert.Equal(0, (await StdioTests.RunGatehouse(["agents", "disable", "analyst", "--config", gateway.PolicyPath, "--as", "alice"])).ExitCode);
        Assert.Equal(0, (await StdioTests.RunGatehouse(["audit", "purge", "--older-than", "1d", "--config", gateway.PolicyPath])).ExitCode);

        var lines = Directory.GetFiles(Path.Combine(gateway.Directory, "siem"), "audit*.jsonl").SelectMany(File.ReadAllLines).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Contains(lines, l => l.GetProperty("tool").GetString() == "agents disable" && l.GetProperty("agent").GetString() == "alice");
        Assert.Contains(lines, l => l.GetProperty("tool").GetString() == "audit purge");
        var purge = Assert.Single(await store.ListAsync(new AuditQuery(Tool: "audit purge"), CancellationToken.None));
        Assert.Equal(("cli", "audit.purged"), (purge.Transport, purge.Rule));
    }

    [Fact]
    public async Task Verify_reads_the_log_row_by_row_so_a_log_far_larger_than_its_memory_verifies()
    {
        var gateway = TestGateway.Create(pg);
        var store = await SqliteStateStore.OpenAsync(gateway.Policy.Gateway.StatePath, CancellationToken.None);
        // 400 records of 250 KB each, held twice (the row and its sealed link): 200 MB of text, 400 MB as .NET strings.
        var sql = $"select '{new string('x', 250_000)}'";
        const int Records = 400;
        for (var batch = 0; batch < Records / 50; batch++)
        {
            await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
            {
                var record = new AuditRecord { Id = AuditRecord.NewId(), Time = DateTimeOffset.UtcNow, Tool = "query", Transport = "test", Agent = "big", Sql = sql, Decision = Verdict.Allowed, Rule = "r", Reason = "seeded" };
                await store.BeginAsync(record with { Decision = Verdict.Started }, CancellationToken.None);
                await store.CompleteAsync(record, CancellationToken.None);
            }));
        }

        // A garbage-collected heap capped at 64 MB: a verify holding the log in memory dies of it.
        var verify = await StdioTests.RunGatehouse(
            ["audit", "verify", "--config", gateway.PolicyPath], environment: new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x4000000" });
        Assert.True(verify.ExitCode == 0, verify.Stderr);
        Assert.Contains($"Intact: {Records} sealed record(s)", verify.Stdout);
    }

    [Fact]
    public async Task Every_finished_call_reaches_the_json_lines_sink_masked_as_the_agent_saw_it()
    {
        var gateway = TestGateway.Create(pg, gateway: "audit:\n  sink: siem/audit.jsonl", connectionSettings: "capture: full");
        string auditId;
        await using (var server = await HttpGateway.StartAsync(gateway))
        {
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
            auditId = (await client.QueryAsync("select email, ssn from customers where id = 1")).AuditId();
        }

        // Serilog's daily rolling puts the date before the extension: audit20261202.jsonl.
        var line = await EventuallyAsync(
            () => Task.FromResult(Directory.GetFiles(Path.Combine(gateway.Directory, "siem"), "audit*.jsonl")
                .SelectMany(f => File.ReadAllLines(f))
                .FirstOrDefault(l => l.Contains(auditId, StringComparison.Ordinal))),
            "the record in the sink file");
        using var json = JsonDocument.Parse(line);
        Assert.Equal("allowed", json.RootElement.GetProperty("decision").GetString());
        Assert.Equal("analyst", json.RootElement.GetProperty("agent").GetString());
        Assert.Contains("[email]", json.RootElement.GetProperty("result").GetString());
        Assert.DoesNotContain("amelia.hartmann@example.com", line);
        Assert.DoesNotContain("536-22-4821", line);
        Assert.All(Directory.GetFiles(Path.Combine(gateway.Directory, "siem"), "audit*.jsonl"), f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f)));
    }

    [Fact]
    public async Task Export_writes_one_json_line_per_record_in_the_window_and_refuses_bad_arguments()
    {
        var gateway = TestGateway.Create(pg);
        var store = await SqliteStateStore.OpenAsync(gateway.Policy.Gateway.StatePath, CancellationToken.None);
        await SeedAsync(store, "last-week", DateTimeOffset.UtcNow.AddDays(-7));
        await SeedAsync(store, "today", DateTimeOffset.UtcNow.AddMinutes(-5));
        await SeedAsync(store, "today", DateTimeOffset.UtcNow.AddMinutes(-1));
        var file = Path.Combine(gateway.Directory, "export.jsonl");

        var export = await StdioTests.RunGatehouse(["audit", "export", "--config", gateway.PolicyPath, "--since", "1d", "--output", file]);
        Assert.Equal(0, export.ExitCode);
        Assert.Contains("Exported 2 record(s)", export.Stderr);
        var agents = File.ReadAllLines(file).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("agent").GetString());
        Assert.Equal(["today", "today"], agents);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));

        // Exported again over a file others could read: it is made the writer's own before the records go in.
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Assert.Equal(0, (await StdioTests.RunGatehouse(["audit", "export", "--config", gateway.PolicyPath, "--since", "1d", "--output", file])).ExitCode);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.Equal(2, File.ReadAllLines(file).Length);

        var all = await StdioTests.RunGatehouse(["audit", "export", "--config", gateway.PolicyPath]);
        Assert.Equal(3, all.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

        var csv = await StdioTests.RunGatehouse(["audit", "export", "--config", gateway.PolicyPath, "--format", "csv"]);
        Assert.NotEqual(0, csv.ExitCode);
        Assert.Contains("use jsonl", csv.Stderr);
        var since = await StdioTests.RunGatehouse(["audit", "export", "--config", gateway.PolicyPath, "--since", "yesterday"]);
        Assert.NotEqual(0, since.ExitCode);
        Assert.Contains("--since takes a window such as 7d or an ISO 8601 time", since.Stderr);
    }

    [Fact]
    public async Task With_an_otlp_endpoint_each_call_is_exported_as_a_trace_to_the_collector()
    {
        // A stand-in OTLP/HTTP collector on loopback: it keeps what the exporter posts.
        var (listener, port) = TestGateway.Listen(prefix: free => $"http://127.0.0.1:{free}/");
        using var collector = listener;
        var received = new List<(string Path, byte[] Body)>();
        var collecting = Task.Run(async () =>
        {
            while (collector.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await collector.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                lock (received)
                {
                    received.Add((context.Request.Url!.AbsolutePath, body.ToArray()));
                }

                context.Response.StatusCode = 200;
                context.Response.Close();
            }
        });

        var gateway = TestGateway.Create(pg, gateway: $"telemetry:\n  otlp_endpoint: http://127.0.0.1:{port}");
        await using (var server = await HttpGateway.StartAsync(gateway))
        {
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
            await client.QueryAsync("select count(*) from orders");
            await EventuallyAsync(
                () =>
                {
                    lock (received)
                    {
                        return Task.FromResult(received.Any(r => r.Path == "/v1/traces" && Contains(r.Body, "gatehouse.query")) ? "exported" : null);
                    }
                },
                "the query's span at the collector");
        }

        lock (received)
        {
            var traces = received.Where(r => r.Path == "/v1/traces").ToList();
            Assert.Contains(traces, r => Contains(r.Body, "gatehouse.stage.execute"));
            Assert.DoesNotContain(traces, r => Contains(r.Body, "from orders"));
        }

        collector.Stop();
        await collecting;
    }

    // Span names travel as plain UTF-8 inside the protobuf payload.
    private static bool Contains(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;

}
