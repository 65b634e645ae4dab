using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Audit;
using Gatehouse.McpServer.Demo;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// PostgreSQL 14 prints no parse tree for a prepared statement, so the gateway cannot vet what a statement calls: it must
/// refuse every statement, saying why, rather than run them unvetted.
/// </summary>
public sealed class OldServerTests : IAsyncLifetime
{
    private ShopServer _shop = null!;

    public async Task InitializeAsync() => _shop = await ShopServer.StartAsync("pg14", await NodePackages.PostgresAsync(14));

    public async Task DisposeAsync() => await _shop.DisposeAsync();

    [Fact]
    public async Task PostgreSQL_14_is_refused_for_every_statement_with_the_version_it_needs()
    {
        Assert.StartsWith("14", (string)(await AdminScalarAsync("show server_version"))!);
        var gateway = TestGateway.Create($"Host=127.0.0.1;Port={_shop.Server.Port};Database=shop;Username=gatehouse_gateway", _shop.GatewayPassword);
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));

        foreach (var sql in new[] { "select count(*) from orders", "select 1" })
        {
            var refused = await client.QueryAsync(sql);
            Assert.True(refused.IsError, sql);
            Assert.Equal("database.rejected", refused.Rule());
            Assert.Contains("Gatehouse needs PostgreSQL 15 or later", refused.Text());
            Assert.Equal(Verdict.Failed, (await http.State.GetAsync(refused.AuditId(), CancellationToken.None))!.Decision);
        }
    }

    private async Task<object?> AdminScalarAsync(string sql)
    {
        await using var connection = new Npgsql.NpgsqlConnection(_shop.Server.AdminConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }
}
