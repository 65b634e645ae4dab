using System.Collections.Concurrent;
using System.Diagnostics;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;
using ModelContextProtocol.Client;

namespace Gatehouse.Load;

/// <summary>
/// Soak and faults: agents call <c>serve --http</c> without pause while PostgreSQL is stopped and restarted (a third of the
/// way in) and the gateway is killed with SIGKILL and started again (two thirds in). Afterwards: memory over time, errors by
/// kind, <c>gatehouse audit verify</c>, and whether every call whose result came back has its record.
/// </summary>
public static class Soak
{
    /// <param name="approvals">With the tokens of an agent and an admin, also runs <see cref="SoakApprovals"/> (its policy already in the file).</param>
    public static async Task RunAsync(LocalPostgresServer server, GatewayPolicy policy, string policyPath, string token, string binary, TimeSpan duration, int agents, (string Agent, string Admin)? approvals = null)
    {
        var port = GatewayProcess.FreePort();
        var endpoint = new Uri($"http://127.0.0.1:{port}/mcp");
        var gateway = await GatewayProcess.StartAsync(binary, policyPath, port);
        var returned = new ConcurrentBag<string>();
        var errors = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var memory = new ConcurrentQueue<(double Minute, double Mb)>();
        var clock = Stopwatch.StartNew();
        var calls = 0;
        var approvalLoop = approvals is null ? null : new SoakApprovals();
        var approving = approvalLoop?.RunAsync(endpoint, approvals!.Value.Agent, approvals.Value.Admin, clock, duration) ?? Task.CompletedTask;

        var workers = Enumerable.Range(0, agents).Select(async _ =>
        {
            McpClient? client = null;
            while (clock.Elapsed < duration)
            {
                try
                {
                    client ??= await McpClients.HttpAsync(endpoint, token);
                    var result = await client.CallToolAsync("query", new Dictionary<string, object?> { ["connection"] = "shop", ["sql"] = "select id, status from orders where id = 42" });
                    Interlocked.Increment(ref calls);
                    if (result.IsError == true)
                    {
                        errors.AddOrUpdate("refused: " + RefusalRule(result), 1, (_, n) => n + 1);
                    }
                    else if (result.StructuredContent is { } s && s.TryGetProperty("audit_id", out var id))
                    {
                        returned.Add(id.GetString()!);
                    }
                }
                catch (Exception e)
                {
                    errors.AddOrUpdate("transport: " + e.GetType().Name, 1, (_, n) => n + 1);
                    if (client is not null)
                    {
                        await client.DisposeAsync();
                        client = null;
                    }

                    await Task.Delay(100);
                }
            }

            if (client is not null)
            {
                await client.DisposeAsync();
            }
        }).ToList();

        var sampler = Task.Run(async () =>
        {
            while (clock.Elapsed < duration)
            {
                try
                {
                    memory.Enqueue((clock.Elapsed.TotalMinutes, GatewayProcess.Memory(gateway.Id, "VmRSS") / 1024.0));
                }
                catch (IOException)
                {
                }

                await Task.Delay(TimeSpan.FromSeconds(10));
            }
        });

        await Task.Delay(duration / 3);
        Console.WriteLine($"{clock.Elapsed.TotalSeconds:0}s: stopping PostgreSQL for 5 s");
        await server.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(5));
        await server.RestartAsync();
        Console.WriteLine($"{clock.Elapsed.TotalSeconds:0}s: PostgreSQL is back");

        await Task.Delay(duration / 3 - TimeSpan.FromSeconds(5));
        Console.WriteLine($"{clock.Elapsed.TotalSeconds:0}s: kill -9 the gateway, then start it again");
        gateway.Kill(entireProcessTree: true);
        await gateway.WaitForExitAsync();
        gateway = await GatewayProcess.StartAsync(binary, policyPath, port);

        await Task.WhenAll(workers);
        await sampler;
        await approving;
        gateway.Kill(entireProcessTree: true);
        await gateway.WaitForExitAsync();

        var store = (await GatewayState.OpenAsync(policy, CancellationToken.None)).Store;
        var missing = 0;
        foreach (var id in returned)
        {
            missing += await store.GetAsync(id, CancellationToken.None) is { Decision: Verdict.Allowed } ? 0 : 1;
        }

        var verify = Process.Start(new ProcessStartInfo(binary, ["audit", "verify", "--config", policyPath]) { RedirectStandardOutput = true })!;
        var verdict = (await verify.StandardOutput.ReadToEndAsync()).Trim().Split('\n')[^1];
        await verify.WaitForExitAsync();

        Console.WriteLine();
        Console.WriteLine($"soak: {agents} agents for {duration.TotalMinutes:0.#} min: {calls} calls answered, {returned.Count} with results");
        foreach (var (kind, count) in errors.OrderByDescending(e => e.Value))
        {
            Console.WriteLine($"  {count,7}  {kind}");
        }

        Console.WriteLine($"memory (RSS, MB) by minute: {string.Join(", ", memory.Select(m => $"{m.Minute:0.0}: {m.Mb:0}"))}");
        Console.WriteLine($"returned results without their record: {missing} of {returned.Count}");
        Console.WriteLine($"audit verify (exit {verify.ExitCode}): {verdict}");
        if (approvalLoop is not null)
        {
            await approvalLoop.ReportAsync(new Npgsql.NpgsqlConnectionStringBuilder(server.AdminConnectionString) { Database = "shop" }.ConnectionString);
        }
    }

    /// <summary>The rule a refused call names, e.g. database.unavailable.</summary>
    internal static string RefusalRule(ModelContextProtocol.Protocol.CallToolResult result) =>
        result.StructuredContent is { } s && s.TryGetProperty("error", out var e) ? e.GetProperty("rule").GetString() ?? "?" : "?";
}
