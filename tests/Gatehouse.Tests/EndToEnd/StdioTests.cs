using System.Diagnostics;
using System.Text.Json;
using Gatehouse.Connectors.State;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;
using Microsoft.IdentityModel.JsonWebTokens;
using ModelContextProtocol.Client;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>The gateway as a child process speaking MCP over stdio, driven by the SDK's McpClient.</summary>
[Collection(PostgresCollection.Name)]
public sealed class StdioTests(PostgresFixture pg)
{
    private readonly TestGateway _gateway = TestGateway.Create(pg);

    [Fact]
    public async Task An_agent_lists_the_three_tools_with_their_annotations()
    {
        await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("analyst"));
        var tools = (await client.ListToolsAsync()).ToDictionary(t => t.Name);
        Assert.Equal(["describe_schema", "query", "request_access"], tools.Keys.Order());
        Assert.True(tools["describe_schema"].ProtocolTool.Annotations?.ReadOnlyHint);
        Assert.False(tools["query"].ProtocolTool.Annotations?.ReadOnlyHint);
        Assert.True(tools["query"].ProtocolTool.Annotations?.DestructiveHint);
        var schema = tools["query"].JsonSchema.GetProperty("properties");
        Assert.True(schema.TryGetProperty("sql", out _));
        Assert.True(schema.TryGetProperty("params", out _));
        Assert.True(schema.TryGetProperty("max_rows", out _));
    }

    [Fact]
    public async Task An_agent_queries_the_shop_and_every_call_is_attributed_to_it()
    {
        await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("analyst"));
        var result = await client.QueryAsync("select status, count(*) as n from orders where customer_id = $1 group by status order by status", [3]);
        Assert.NotEqual(true, result.IsError);
        var body = result.Structured();
        Assert.Equal("status", body.GetProperty("columns")[0].GetProperty("name").GetString());
        Assert.True(body.GetProperty("row_count").GetInt32() > 0);

        var state = await SqliteStateStore.OpenAsync(_gateway.Policy.Gateway.StatePath, CancellationToken.None);
        var record = await state.GetAsync(result.AuditId(), CancellationToken.None);
        Assert.Equal("analyst", record!.Agent);
        Assert.Equal("stdio", record.Transport);
        Assert.Equal("[\"3\"]", record.Parameters);
        Assert.StartsWith("stdio-", record.SessionId);
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("DEBUG", true)]
    [InlineData("loud", false)]
    public async Task The_console_tells_refused_calls_and_allowed_ones_only_at_debug(string? level, bool allowedLogged)
    {
        var stderr = new List<string>();
        await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("analyst"), stderr: stderr, logLevel: level);
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from orders")).IsError);
        Assert.True((await client.QueryAsync("DELETE FROM orders")).IsError);

        // The log is written in order by a background thread: once the refusal's line is there, an allowed call's would be too.
        string[] lines = [];
        for (var waited = 0; waited < 100 && !lines.Any(l => l.Contains("query by analyst: Denied (grant.read_only)", StringComparison.Ordinal)); waited++)
        {
            await Task.Delay(100);
            lock (stderr)
            {
                lines = [.. stderr];
            }
        }

        Assert.Contains(lines, l => l.Contains("query by analyst: Denied (grant.read_only)", StringComparison.Ordinal));
        Assert.Equal(allowedLogged, lines.Any(l => l.Contains("query by analyst: Allowed", StringComparison.Ordinal)));
        Assert.Equal(level == "loud", lines.Any(l => l.Contains("GATEHOUSE_LOG_LEVEL is loud, which is not a level", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_delete_under_a_read_grant_is_refused_with_the_reason_and_nothing_changes()
    {
        var before = await pg.AdminScalarAsync("select count(*) from orders");
        await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("analyst"));
        var result = await client.QueryAsync("DELETE FROM orders");
        Assert.True(result.IsError);
        Assert.Equal("grant.read_only", result.Rule());
        Assert.Contains("needs write access", result.Text());
        Assert.Equal(before, await pg.AdminScalarAsync("select count(*) from orders"));
    }

    [Fact]
    public async Task Describe_schema_shows_only_what_the_caller_may_read()
    {
        await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("narrow"));
        var result = await client.CallToolAsync("describe_schema", new Dictionary<string, object?> { ["connection"] = "shop" });
        var tables = result.Structured().GetProperty("tables").EnumerateArray().Select(t => t.GetProperty("name").GetString()).ToList();
        Assert.Equal(["orders"], tables);
        var refused = await client.CallToolAsync("describe_schema", new Dictionary<string, object?> { ["connection"] = "shop", ["table"] = "customers" });
        Assert.Equal("grant.relation_not_granted", refused.Rule());

        // orders.customer_id references customers, which this caller may not see: the key would say it exists.
        Assert.Empty(result.Structured().GetProperty("tables")[0].GetProperty("foreign_keys").EnumerateArray());
        Assert.DoesNotContain("customers", result.Text(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Describe_schema_passes_comments_through_the_content_detectors()
    {
        await pg.AdminScalarAsync("comment on column orders.note is 'free text, e.g. refund to 536-22-4821'");
        try
        {
            await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("narrow"));
            var result = await client.CallToolAsync("describe_schema", new Dictionary<string, object?> { ["connection"] = "shop", ["table"] = "orders" });
            Assert.Contains("free text, e.g. refund to", result.Text(), StringComparison.Ordinal);
            Assert.DoesNotContain("536-22-4821", result.Text(), StringComparison.Ordinal);
        }
        finally
        {
            await pg.AdminScalarAsync("comment on column orders.note is null");
        }
    }

    [Fact]
    public async Task A_group_grant_widens_what_an_agent_may_read()
    {
        await using var client = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("narrow", ["finance"]));
        var result = await client.QueryAsync("select count(*) from payments p join orders o on o.id = p.order_id");
        Assert.NotEqual(true, result.IsError);
        var refused = await client.QueryAsync("select count(*) from customers");
        Assert.Equal("grant.relation_not_granted", refused.Rule());
        Assert.Contains("public.customers", refused.Text());
    }

    [Fact]
    public async Task A_token_that_expires_mid_session_stops_working_on_the_next_call()
    {
        // Long enough for a busy machine to start the process and answer its first call; then wait out the token's own expiry.
        var token = _gateway.Mint("analyst", lifetime: TimeSpan.FromSeconds(10));
        await using var client = await GatewayClients.StdioAsync(_gateway, token);
        Assert.NotEqual(true, (await client.QueryAsync("select 1")).IsError);
        var expiresIn = new JsonWebToken(token).ValidTo - DateTime.UtcNow;
        await Task.Delay(expiresIn + TimeSpan.FromSeconds(1));
        var result = await client.QueryAsync("select 1");
        Assert.Equal("identity.expired_token", result.Rule());
    }

    [Fact]
    public async Task Disabling_an_agent_takes_effect_on_its_next_call_only()
    {
        await using var analyst = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("analyst"));
        await using var ops = await GatewayClients.StdioAsync(_gateway, _gateway.Mint("ops-bot"));
        Assert.NotEqual(true, (await analyst.QueryAsync("select 1")).IsError);
        var state = await SqliteStateStore.OpenAsync(_gateway.Policy.Gateway.StatePath, CancellationToken.None);
        await state.SetDisabledAsync("analyst", true, "test", CancellationToken.None);
        try
        {
            Assert.Equal("identity.agent_disabled", (await analyst.QueryAsync("select 1")).Rule());
            Assert.NotEqual(true, (await ops.QueryAsync("select 1")).IsError);
        }
        finally
        {
            await state.SetDisabledAsync("analyst", false, "test", CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_token_file_is_reread_so_a_refreshed_token_is_used()
    {
        var tokenFile = Path.Combine(_gateway.Directory, "agent.token");
        File.WriteAllText(tokenFile, _gateway.Mint("analyst"));
        await using var client = await GatewayClients.StdioAsync(_gateway, token: null, tokenFile: tokenFile);
        Assert.NotEqual(true, (await client.QueryAsync("select 1")).IsError);
        File.WriteAllText(tokenFile, "garbage");
        Assert.Equal("identity.malformed_token", (await client.QueryAsync("select 1")).Rule());
    }

    [Fact]
    public async Task An_invalid_token_stops_the_server_at_start_with_a_clear_message()
    {
        var (exitCode, _, stderr) = await RunGatehouse(["serve", "--config", _gateway.PolicyPath], token: _gateway.Mint("analyst", issuedAt: DateTimeOffset.UtcNow.AddHours(-1)));
        Assert.Equal(ExitCodes.Refused, exitCode);
        Assert.Contains("identity.expired_token", stderr);
    }

    [Fact]
    public async Task Stdout_carries_nothing_but_json_rpc()
    {
        var start = new ProcessStartInfo(GatewayClients.GatehouseBinary)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[] { "serve", "--config", _gateway.PolicyPath })
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment[StdioCallerToken.EnvironmentVariable] = _gateway.Mint("analyst");
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string[] requests =
        [
            """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}""",
            """{"jsonrpc":"2.0","method":"notifications/initialized"}""",
            """{"jsonrpc":"2.0","id":2,"method":"tools/list"}""",
            """{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"query","arguments":{"connection":"shop","sql":"select count(*) from customers"}}}""",
            """{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"query","arguments":{"connection":"shop","sql":"drop table customers"}}}""",
        ];
        foreach (var request in requests)
        {
            await process.StandardInput.WriteLineAsync(request);
        }

        var lines = new List<string>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (lines.Count(l => l.Contains("\"id\":", StringComparison.Ordinal)) < 4)
        {
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token);
            Assert.NotNull(line);
            lines.Add(line);
        }

        process.StandardInput.Close();
        await process.WaitForExitAsync(timeout.Token);
        Assert.All(lines, line => Assert.Equal("2.0", JsonDocument.Parse(line).RootElement.GetProperty("jsonrpc").GetString()));
        // The startup summary: what serves, with which connections and policy version, and never the password.
        var log = await stderr;
        Assert.Contains("Gatehouse ready: MCP over stdio", log);
        Assert.Contains(_gateway.Policy.Hash, log);
        Assert.Matches(@"shop \(gatehouse_\w+@127\.0\.0\.1:\d+/shop_\w+, TLS prefer, \w+ masking\)", log);
        Assert.DoesNotContain(File.ReadAllText(Path.Combine(_gateway.Directory, "shop.password")).Trim(), log);
    }

    internal static async Task<(int ExitCode, string Stdout, string Stderr)> RunGatehouse(
        IEnumerable<string> arguments, string? token = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(GatewayClients.GatehouseBinary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Remove(StdioCallerToken.EnvironmentVariable);
        if (token is not null)
        {
            start.Environment[StdioCallerToken.EnvironmentVariable] = token;
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
