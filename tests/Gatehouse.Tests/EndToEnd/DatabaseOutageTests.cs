using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Audit;
using Gatehouse.McpServer.Demo;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>A PostgreSQL of its own that the test stops and starts while the gateway keeps serving.</summary>
public sealed class DatabaseOutageTests : IAsyncLifetime
{
    private LocalPostgresServer _server = null!;
    private string _password = "";

    public async Task InitializeAsync()
    {
        NpgsqlSettings.DisableSqlRewriting();
        _server = await LocalPostgresServer.StartAsync(TestDirectory.Create("pg-outage"), CancellationToken.None);
        _password = await ShopDatabase.CreateAsync(_server.AdminConnectionString, "shop", "gatehouse_gateway", CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectory.Remove(_server.Directory);
    }

    [Fact]
    public async Task A_database_that_goes_away_gives_clear_errors_and_the_gateway_recovers_when_it_returns()
    {
        var gateway = TestGateway.Create($"Host=127.0.0.1;Port={_server.Port};Database=shop;Username=gatehouse_gateway;Timeout=3", _password);
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from orders")).IsError);

        await _server.StopAsync();
        var down = await client.QueryAsync("select count(*) from orders");
        Assert.True(down.IsError);
        Assert.Equal("database.unavailable", down.Rule());
        Assert.Contains("not reachable", down.Text());
        Assert.DoesNotContain(_password, down.Text());
        Assert.Equal(Verdict.Failed, (await http.State.GetAsync(down.AuditId(), CancellationToken.None))!.Decision);

        await _server.RestartAsync();
        var back = await client.QueryAsync("select count(*) from orders");
        Assert.NotEqual(true, back.IsError);
        Assert.Equal(80L, back.Structured().GetProperty("rows")[0][0].GetInt64());
    }
}
