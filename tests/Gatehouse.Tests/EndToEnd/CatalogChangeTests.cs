using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>Cached classifications retire when the catalog changes: a view redefined to read another table is judged afresh.</summary>
[Collection(PostgresCollection.Name)]
public sealed class CatalogChangeTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Agents = """
        agents:
          viewer:
            grants:
              - connection: shop
                access: read
                tables: [public.orders, public.order_totals]
        """;

    private readonly TestGateway _gateway = TestGateway.Create(pg, Agents);
    private HttpGateway _server = null!;

    public async Task InitializeAsync()
    {
        await pg.AdminScalarAsync("create or replace view order_totals as select id, total as amount from orders");
        await pg.AdminScalarAsync($"grant select on order_totals to \"{pg.GatewayRole}\"");
        _server = await HttpGateway.StartAsync(_gateway);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await pg.AdminScalarAsync("drop view if exists order_totals");
    }

    [Fact]
    public async Task A_view_redefined_to_read_another_table_is_refused_once_the_change_is_seen()
    {
        await using var client = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("viewer"));
        const string sql = "select count(*) from order_totals";
        for (var i = 0; i < 5; i++)
        {
            Assert.NotEqual(true, (await client.QueryAsync(sql)).IsError);
        }

        await pg.AdminScalarAsync("create or replace view order_totals as select id, (length(card_number) * 1.0)::numeric(10,2) as amount from customers");
        var deadline = DateTime.UtcNow.AddSeconds(5);
        string? rule = null;
        while (DateTime.UtcNow < deadline && rule is null)
        {
            var result = await client.QueryAsync(sql);
            rule = result.IsError == true ? result.Rule() : null;
            await Task.Delay(50);
        }

        Assert.Equal("grant.relation_not_granted", rule);
    }

    [Fact]
    public async Task A_tagged_column_renamed_under_overlay_masking_stops_the_connection_once_the_change_is_seen()
    {
        // A rename rewrites only the column's own catalog row: nothing else would retire the tags checked against the old name.
        var gateway = TestGateway.Create(pg, connectionSettings: "masking: overlay\ntags: { public.customers.ssn: ssn }");
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var analyst = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        // Tags are checked again only when the catalog's version changes, once one is confirmed: calls until then check each time.
        for (var i = 0; i < 4; i++)
        {
            Assert.NotEqual(true, (await analyst.QueryAsync("select id from customers")).IsError);
            await Task.Delay(300);
        }

        await pg.AdminScalarAsync("alter table customers rename column ssn to social");
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(5);
            string? rule = null;
            while (DateTime.UtcNow < deadline && rule is null)
            {
                var result = await analyst.QueryAsync("select social from customers");
                rule = result.IsError == true ? result.Rule() : null;
                await Task.Delay(50);
            }

            Assert.Equal("masking.tags_out_of_sync", rule);
        }
        finally
        {
            await pg.AdminScalarAsync("alter table customers rename column social to ssn");
        }
    }
}
