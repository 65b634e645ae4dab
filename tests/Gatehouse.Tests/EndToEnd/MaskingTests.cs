using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>The content detectors as the last stage of every call: what leaves the gateway, results and errors alike.</summary>
[Collection(PostgresCollection.Name)]
public sealed class MaskingTests(PostgresFixture pg) : IAsyncLifetime
{
    private readonly TestGateway _gateway = TestGateway.Create(pg);
    private HttpGateway _server = null!;

    public async Task InitializeAsync() => _server = await HttpGateway.StartAsync(_gateway);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Personal_data_in_a_result_is_masked_counted_and_recorded()
    {
        await using var client = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var result = await client.QueryAsync("select full_name, email, phone, ssn, card_number, country from customers where id = 1");
        var body = result.Structured();
        var row = body.GetProperty("rows")[0];
        Assert.Equal("Amelia Hartmann", row[0].GetString());
        Assert.Equal(["[email]", "[phone]", "[ssn]", "[card]"], Enumerable.Range(1, 4).Select(i => row[i].GetString()));
        Assert.Equal("US", row[5].GetString());
        Assert.Equal(1, body.GetProperty("masked").GetProperty("ssn").GetInt32());
        Assert.Equal("card", body.GetProperty("masked_columns").GetProperty("card_number")[0].GetString());

        var text = result.Text();
        foreach (var raw in new[] { "amelia.hartmann@example.com", "536-22-4821", "4111111111111111", "+1 415 555 0134" })
        {
            Assert.DoesNotContain(raw, text);
        }

        var record = await _server.State.GetAsync(result.AuditId(), CancellationToken.None);
        Assert.Equal("email:1, ssn:1, card:1, phone:1", record!.Masking);
    }

    [Fact]
    public async Task A_card_number_cast_to_a_number_is_masked_too()
    {
        await using var client = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var result = await client.QueryAsync(
            "select card_number::bigint as b, card_number::numeric as n, card_number::float8 as f, array[card_number::bigint] as a from customers where id = 1");
        var row = result.Structured().GetProperty("rows")[0];
        Assert.Equal(["[card]", "[card]", "[card]"], Enumerable.Range(0, 3).Select(i => row[i].GetString()));
        Assert.Equal("[card]", row[3][0].GetString());
        Assert.DoesNotContain("4111111111111111", result.Text());
        Assert.Equal(4, result.Structured().GetProperty("masked").GetProperty("card").GetInt32());
    }

    [Theory]
    [InlineData("select ssn::int from customers where id = 1", "536-22-4821")]
    [InlineData("select card_number::int from customers where id = 1", "4111111111111111")]
    [InlineData("select 1 from customers where id = 1 and ssn::date is not null", "536-22-4821")]
    public async Task Values_echoed_in_error_messages_are_masked(string sql, string raw)
    {
        await using var client = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var result = await client.QueryAsync(sql);
        Assert.True(result.IsError);
        Assert.DoesNotContain(raw, result.Text());
        Assert.Contains("[", result.Text());
        var record = await _server.State.GetAsync(result.AuditId(), CancellationToken.None);
        Assert.DoesNotContain(raw, record!.Reason);
    }

    [Fact]
    public async Task Wrapping_a_value_in_sql_expressions_does_not_get_it_past_the_detectors()
    {
        await using var client = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var result = await client.QueryAsync(
            "select 'x' || email || 'y' as a, upper(ssn) as b, json_build_object('c', card_number)::text as c, row_to_json(c)::text as d from customers c where id = 2");
        var text = result.Text();
        foreach (var raw in new[] { "bruno.carvalho@example.net", "BRUNO.CARVALHO@EXAMPLE.NET", "412-67-9034", "5555555555554444" })
        {
            Assert.DoesNotContain(raw, text, StringComparison.OrdinalIgnoreCase);
        }
    }
}
