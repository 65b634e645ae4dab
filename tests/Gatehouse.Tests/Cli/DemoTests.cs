using System.Diagnostics;
using System.Text.Json;
using Gatehouse.McpServer.Cli;
using Gatehouse.Tests.EndToEnd;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Cli;

/// <summary>The newcomer's tour exactly as the README tells it: gatehouse demo, connect as analyst, query, be refused, read the audit log.</summary>
public sealed class DemoTests
{
    [Fact]
    public async Task The_demo_serves_the_shop_refuses_a_delete_records_everything_and_stops_its_database()
    {
        var directory = TestDirectory.Create("demo");
        var start = new ProcessStartInfo(GatewayClients.GatehouseBinary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "demo", "--dir", directory, "--http", "127.0.0.1:0" })
        {
            start.ArgumentList.Add(argument);
        }

        using var demo = Process.Start(start)!;
        var stderr = demo.StandardError.ReadToEndAsync();
        try
        {
            var endpoint = await ReadEndpointAsync(demo);
            var tokens = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(Path.Combine(directory, "tokens.json")))!;
            Assert.Equal(["analyst", "ops-bot"], tokens.Keys.Order());

            await using (var analyst = await GatewayClients.HttpAsync(endpoint, tokens["analyst"]))
            {
                Assert.Equal(3, (await analyst.ListToolsAsync()).Count);
                var rows = await analyst.QueryAsync("select full_name, country from customers order by id limit 3");
                Assert.Equal("Amelia Hartmann", rows.Structured().GetProperty("rows")[0][0].GetString());
                var masked = await analyst.QueryAsync("select email, ssn from customers order by id limit 1");
                Assert.Equal("***@example.com", masked.Structured().GetProperty("rows")[0][0].GetString());
                Assert.StartsWith("tok_", masked.Structured().GetProperty("rows")[0][1].GetString());
                var refused = await analyst.QueryAsync("delete from orders where id = 1");
                Assert.Equal("grant.read_only", refused.Rule());
            }

            // The web console's API opens with the demo's admin token, and sees both agents.
            using (var http = new HttpClient())
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(endpoint, "/admin/api/agents"));
                request.Headers.Authorization = new("Bearer", File.ReadAllText(Path.Combine(directory, "tokens", "admin.token")));
                using var response = await http.SendAsync(request);
                var agents = await response.Content.ReadAsStringAsync();
                Assert.True(response.IsSuccessStatusCode, agents);
                Assert.Contains("\"analyst\"", agents);
                Assert.Contains("\"ops-bot\"", agents);
            }

            var policy = Path.Combine(directory, "gatehouse.yaml");
            var audit = await StdioTests.RunGatehouse(["audit", "list", "--config", policy, "--agent", "analyst"]);
            Assert.Contains("select full_name, country from customers", audit.Stdout);
            Assert.Contains("grant.read_only", audit.Stdout);
            Assert.False(File.ReadAllText(policy).Contains(File.ReadAllText(Path.Combine(directory, "shop.password")), StringComparison.Ordinal));
        }
        finally
        {
            using var term = Process.Start("kill", ["-TERM", demo.Id.ToString()]);
            await term.WaitForExitAsync();
            await demo.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        }

        Assert.Equal(0, demo.ExitCode);
        Assert.False(File.Exists(Path.Combine(directory, "postgres", "data", "postmaster.pid")), "the demo's PostgreSQL should be stopped: " + await stderr);
        TestDirectory.Remove(directory);
    }

    private static async Task<Uri> ReadEndpointAsync(Process demo)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var ready = false;
        while (true)
        {
            var line = await demo.StandardOutput.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("the demo exited before it was ready");
            ready |= line.Contains(DemoCommand.ReadyLine, StringComparison.Ordinal);
            var marker = "MCP endpoint : ";
            if (ready && line.Contains(marker, StringComparison.Ordinal))
            {
                _ = DrainAsync(demo.StandardOutput);
                return new Uri(line[(line.IndexOf(marker, StringComparison.Ordinal) + marker.Length)..].Trim());
            }
        }
    }

    private static async Task DrainAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync() is not null)
        {
        }
    }
}
