using System.Net;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Audit;
using Gatehouse.McpServer.Demo;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>A PostgreSQL of its own that the test stops and starts while the gateway keeps serving.</summary>
public sealed class DatabaseOutageTests : IAsyncLifetime
{
    private ShopServer _shop = null!;

    public async Task InitializeAsync() => _shop = await ShopServer.StartAsync("pg-outage");

    public async Task DisposeAsync() => await _shop.DisposeAsync();

    [Fact]
    public async Task A_database_that_goes_away_gives_clear_errors_and_the_gateway_recovers_when_it_returns()
    {
        var gateway = TestGateway.Create($"Host=127.0.0.1;Port={_shop.Server.Port};Database=shop;Username=gatehouse_gateway;Timeout=3", _shop.GatewayPassword);
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from orders")).IsError);

        await _shop.Server.StopAsync();
        var down = await client.QueryAsync("select count(*) from orders");
        Assert.True(down.IsError);
        Assert.Equal("database.unavailable", down.Rule());
        Assert.Contains("not reachable", down.Text());
        Assert.DoesNotContain(_shop.GatewayPassword, down.Text());
        Assert.Equal(Verdict.Failed, (await http.State.GetAsync(down.AuditId(), CancellationToken.None))!.Decision);

        await _shop.Server.RestartAsync();
        var back = await client.QueryAsync("select count(*) from orders");
        Assert.NotEqual(true, back.IsError);
        Assert.Equal(80L, back.Structured().GetProperty("rows")[0][0].GetInt64());
    }

    [Fact]
    public async Task Health_endpoints_answer_probes_and_readiness_follows_the_database_without_giving_details()
    {
        var gateway = TestGateway.Create($"Host=127.0.0.1;Port={_shop.Server.Port};Database=shop;Username=gatehouse_gateway;Timeout=2", _shop.GatewayPassword);
        await using var http = await HttpGateway.StartAsync(gateway);
        using var probe = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(http.Endpoint.GetLeftPart(UriPartial.Authority)) };

        // No token, and a Host header the MCP endpoint would refuse (probes come by address).
        Assert.Equal((HttpStatusCode.OK, "ok\n"), await GetAsync(probe, "/healthz", host: "10.0.0.7:8787"));
        Assert.Equal((HttpStatusCode.OK, "ready\n"), await GetAsync(probe, "/readyz", host: "10.0.0.7:8787"));
        Assert.Equal(HttpStatusCode.BadRequest, (await GetAsync(probe, "/mcp", host: "10.0.0.7:8787")).Status);

        await _shop.Server.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(1.2)); // past the one second a readiness answer is reused
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "not ready\n"), await GetAsync(probe, "/readyz"));
        Assert.Equal((HttpStatusCode.OK, "ok\n"), await GetAsync(probe, "/healthz"));

        await _shop.Server.RestartAsync();
        var ready = false;
        for (var i = 0; i < 40 && !ready; i++)
        {
            await Task.Delay(250);
            ready = (await GetAsync(probe, "/readyz")).Status == HttpStatusCode.OK;
        }

        Assert.True(ready, "the gateway became ready again once PostgreSQL was back");
    }

    private static async Task<(HttpStatusCode Status, string Body)> GetAsync(HttpClient client, string path, string? host = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (host is not null)
        {
            request.Headers.Host = host;
        }

        using var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
