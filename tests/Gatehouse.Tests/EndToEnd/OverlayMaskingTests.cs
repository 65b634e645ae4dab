using System.Text;
using Gatehouse.Tests.Infrastructure;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Npgsql;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// Overlay masking against the shop: exfiltration attempts by an agent without unmask rights are refused wherever the tagged
/// column hides in the statement, and no raw value, nor its reverse or base64, appears anywhere in the response.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class OverlayMaskingTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Tags = """
        masking: overlay
        tags:
          public.customers.email: email
          public.customers.phone: phone
          public.customers.ssn: ssn
          public.customers.card_number: card
        """;

    private const string Agents = """
        agents:
          analyst:
            grants:
              - connection: shop
                access: read
                schemas: [public]
          support:
            unmask: [email, phone]
            grants:
              - connection: shop
                access: read
                schemas: [public]
          auditor:
            unmask: [all]
            grants:
              - connection: shop
                access: read
                schemas: [public]
        """;

    private readonly TestGateway _gateway = TestGateway.Create(pg, Agents, connectionSettings: Tags);
    private HttpGateway _server = null!;
    private McpClient _analyst = null!;
    private List<string> _secrets = [];

    public async Task InitializeAsync()
    {
        _server = await HttpGateway.StartAsync(_gateway);
        _analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var builder = new NpgsqlConnectionStringBuilder(pg.AdminConnectionString) { Database = pg.Database };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select email, phone, ssn, card_number from customers", connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            for (var i = 0; i < 4; i++)
            {
                if (!reader.IsDBNull(i))
                {
                    var raw = reader.GetString(i);
                    _secrets.AddRange([raw, new string(raw.Reverse().ToArray()), Convert.ToBase64String(Encoding.UTF8.GetBytes(raw))]);
                }
            }
        }
    }

    public async Task DisposeAsync()
    {
        await _analyst.DisposeAsync();
        await _server.DisposeAsync();
    }

    public static TheoryData<string> Attempts() =>
    [
        "select ssn from customers",
        "select ssn as harmless from customers",
        "select ssn::text from customers",
        "select 'x' || ssn || 'y' from customers",
        "select reverse(ssn) from customers",
        "select encode(convert_to(ssn, 'UTF8'), 'base64') from customers",
        "select upper(email) from customers",
        "select split_part(email, '@', 1) from customers",
        "select substr(card_number, 1, 6) from customers",
        "select md5(card_number) from customers",
        "select length(ssn) from customers",
        "select row_to_json(c) from customers c",
        "select to_jsonb(c.*) from customers c",
        "select json_agg(c) from customers c",
        "select c from customers c",
        "select * from customers",
        "select customers.* from customers",
        "select string_agg(phone, ',') from customers",
        "select array_agg(email order by id) from customers",
        "select max(ssn) from customers",
        "select count(distinct card_number) from customers",
        "select id from customers where ssn like '5%'",
        "select id from customers where email = 'amelia.hartmann@example.com'",
        "select id from customers order by ssn",
        "select ssn, count(*) from customers group by ssn",
        "select (select ssn from customers limit 1)",
        "select id from customers c where exists (select 1 from customers d where d.ssn = c.ssn and d.id <> c.id)",
        "with x as (select ssn from customers) select * from x",
        "with x as (select * from customers) select id from x where card_number is not null",
        "select s.ssn from (select * from customers) s",
        "select o.id from orders o join customers c on c.email = o.note",
        "select id from customers where id = $1 and ssn = $2",
        "select jsonb_build_object('e', email) from customers",
        "select format('%s', phone) from customers",
        "select case when ssn > '5' then 1 else 0 end from customers",
        "select id from customers union select length(ssn) from customers",
        "select 1 from customers where ssn::int > 0",
        "explain select ssn from customers",
        "select ssn from customers c join orders o on o.customer_id = c.id",
        "select lateral_ssn from orders o, lateral (select ssn as lateral_ssn from customers c where c.id = o.customer_id) l",
    ];

    [Theory]
    [MemberData(nameof(Attempts))]
    public async Task An_agent_without_unmask_rights_gets_no_tagged_value_out(string sql)
    {
        object?[]? parameters = sql.Contains("$2", StringComparison.Ordinal) ? [1, "536-22-4821"] : null;
        var result = await _analyst.QueryAsync(sql, parameters);
        Assert.True(result.IsError, $"expected a refusal, got {result.Text()}");
        Assert.Equal("masking.tagged_column", result.Rule());
        AssertNoSecret(result);
    }

    [Fact]
    public async Task Untagged_columns_of_a_tagged_table_are_readable()
    {
        var result = await _analyst.QueryAsync("select id, full_name, country from customers where country = $1 order by id", ["US"]);
        Assert.NotEqual(true, result.IsError);
        Assert.Equal("Amelia Hartmann", result.Structured().GetProperty("rows")[0][1].GetString());
        AssertNoSecret(result);
    }

    [Fact]
    public async Task Unmask_rights_let_exactly_their_classes_through()
    {
        await using var support = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("support"));
        var contact = await support.QueryAsync("select email, phone from customers where id = 1");
        Assert.Equal("amelia.hartmann@example.com", contact.Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("masking.tagged_column", (await support.QueryAsync("select ssn from customers where id = 1")).Rule());

        await using var auditor = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("auditor"));
        var all = await auditor.QueryAsync("select ssn, card_number from customers where id = 1");
        Assert.Equal("536-22-4821", all.Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("4111111111111111", all.Structured().GetProperty("rows")[0][1].GetString());
    }

    [Fact]
    public async Task Describe_schema_says_which_columns_are_sensitive_and_masked_for_the_caller()
    {
        var result = await _analyst.CallToolAsync("describe_schema", new Dictionary<string, object?> { ["connection"] = "shop", ["table"] = "customers" });
        var columns = result.Structured().GetProperty("tables")[0].GetProperty("columns").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.Equal("ssn", columns["ssn"].GetProperty("sensitive").GetString());
        Assert.True(columns["ssn"].GetProperty("masked_for_you").GetBoolean());
        Assert.False(columns["full_name"].TryGetProperty("sensitive", out _));
    }

    [Fact]
    public async Task A_mistyped_tag_stops_the_connection_instead_of_leaving_the_real_column_open()
    {
        var typo = TestGateway.Create(pg, Agents, connectionSettings: Tags.Replace("public.customers.ssn: ssn", "public.customers.snn: ssn"));
        await using var server = await HttpGateway.StartAsync(typo);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, typo.Mint("analyst"));
        var result = await client.QueryAsync("select ssn from customers");
        Assert.Equal("masking.tags_out_of_sync", result.Rule());
        Assert.Contains("public.customers.snn", result.Text());
        AssertNoSecret(result);
    }

    private void AssertNoSecret(CallToolResult result)
    {
        var everything = result.Text() + (result.StructuredContent?.GetRawText() ?? "");
        foreach (var secret in _secrets)
        {
            Assert.DoesNotContain(secret, everything);
        }
    }
}
