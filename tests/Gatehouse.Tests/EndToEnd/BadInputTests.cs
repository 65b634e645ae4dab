using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Audit;
using Gatehouse.McpServer.Tools;
using Gatehouse.Tests.Infrastructure;
using ModelContextProtocol.Client;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>Every kind of bad input through the real MCP path: a clear error, a denied or failed record, and nothing executed.</summary>
[Collection(PostgresCollection.Name)]
public sealed class BadInputTests(PostgresFixture pg) : IAsyncLifetime
{
    private readonly TestGateway _gateway = TestGateway.Create(pg, gateway: "limits:\n  max_sql_length: 4096\n  max_rows: 50");
    private HttpGateway _server = null!;
    private McpClient _client = null!;

    public async Task InitializeAsync()
    {
        _server = await HttpGateway.StartAsync(_gateway);
        _client = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("narrow"));
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await _server.DisposeAsync();
    }

    private async Task<AuditRecord> RecordOf(ModelContextProtocol.Protocol.CallToolResult result) =>
        (await _server.State.GetAsync(result.AuditId(), CancellationToken.None))!;

    [Theory]
    [InlineData("", "sql.empty", Verdict.Denied)]
    [InlineData("/* only a comment */", "sql.empty", Verdict.Denied)]
    [InlineData("select 1; drop table customers", "sql.multiple_statements", Verdict.Denied)]
    [InlineData("COMMIT; DROP TABLE customers", "sql.multiple_statements", Verdict.Denied)]
    [InlineData("select 'unterminated", "sql.unreadable", Verdict.Denied)]
    [InlineData("drop table customers", "grant.kind_not_allowed", Verdict.Denied)]
    [InlineData("select * from customers", "grant.relation_not_granted", Verdict.Denied)]
    [InlineData("select * from orders o join customers c on c.id = o.customer_id", "grant.relation_not_granted", Verdict.Denied)]
    [InlineData("selec 1", "grant.kind_not_allowed", Verdict.Denied)]
    [InlineData("select 1 +", "database.rejected", Verdict.Failed)]
    public async Task Bad_statements_get_a_clear_error_a_record_and_change_nothing(string sql, string rule, Verdict verdict)
    {
        var result = await _client.QueryAsync(sql);
        Assert.True(result.IsError);
        Assert.Equal(rule, result.Rule());
        Assert.Equal(verdict, (await RecordOf(result)).Decision);
        Assert.Equal(20L, await pg.AdminScalarAsync("select count(*) from customers"));
    }

    [Fact]
    public async Task A_statement_of_thousands_of_nested_explains_is_refused_and_the_gateway_answers_on()
    {
        // Within the largest statement limit a policy may set; read one level per EXPLAIN, it once took the stack, and the
        // gateway with it.
        var gateway = TestGateway.Create(pg, gateway: "limits:\n  max_sql_length: 1048576");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("narrow"));

        var result = await client.QueryAsync(string.Concat(Enumerable.Repeat("EXPLAIN ", 130_000)) + "SELECT 1");

        Assert.Equal("grant.kind_not_allowed", result.Rule());
        Assert.Contains("this explains EXPLAIN", result.Text(), StringComparison.Ordinal);
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from orders")).IsError);
    }

    [Fact]
    public async Task On_a_database_that_reads_backslashes_as_escapes_two_statements_cannot_pass_for_one()
    {
        // With standard_conforming_strings off, 'a\' --' is one string to PostgreSQL, while the gateway reads 'a\' and a
        // comment: two statements differing only in that "comment" read alike to the gateway, so the second ran on the first's
        // classification, reading a table the agent was never granted.
        var database = $"legacy_{Guid.NewGuid():N}"[..20];
        var role = $"gatehouse_{Guid.NewGuid():N}"[..18];
        var password = await Gatehouse.McpServer.Demo.ShopDatabase.CreateAsync(pg.AdminConnectionString, database, role, CancellationToken.None);
        await using (var admin = new Npgsql.NpgsqlConnection(pg.AdminConnectionString))
        {
            await admin.OpenAsync();
            await using var alter = new Npgsql.NpgsqlCommand($"ALTER DATABASE \"{database}\" SET standard_conforming_strings = off", admin);
            await alter.ExecuteNonQueryAsync();
        }

        var gateway = TestGateway.Create($"Host={pg.Host};Port={pg.Port};Database={database};Username={role};Pooling=true", password);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("narrow"));

        const string First = "select note from orders where note = 'a\\' --' or true --\norder by 1 limit 5";
        var first = await client.QueryAsync(First);
        // Classifications are cached once the connection's catalog version is known (it is watched from the first call on).
        await Task.Delay(PostgresCatalogVersions.PollInterval * 4);
        Assert.NotEqual(true, (await client.QueryAsync(First)).IsError);
        var second = await client.QueryAsync("select note from orders where note = 'a\\' --' union select full_name from customers --\norder by 1 limit 5");

        Assert.NotEqual(true, first.IsError);
        Assert.DoesNotContain("Amelia Hartmann", second.Text(), StringComparison.Ordinal);
        Assert.Equal(first.Structured().GetProperty("rows").GetRawText(), second.Structured().GetProperty("rows").GetRawText());
    }

    [Fact]
    public async Task What_an_agent_sends_is_recorded_bounded_however_large_it_is()
    {
        // Refused, but recorded: an agent must not make each record (stored twice, and sent to the sink) megabytes long.
        var connection = await _client.QueryAsync("select 1", connection: new string('c', 200_000));
        Assert.True(connection.IsError);
        Assert.InRange((await RecordOf(connection)).Connection!.Length, 1, 150);

        var parameters = await _client.QueryAsync("select $1::text, $2::text", [new string('p', 150_000), new string('q', 150_000)]);
        Assert.Equal("request.parameters_too_large", parameters.Rule());
        Assert.InRange((await RecordOf(parameters)).Parameters!.Length, 1, 1_000);

        // Parameters within the limit are kept whole: the call may run with them.
        var kept = await _client.QueryAsync("select length($1::text)", [new string('k', 3_000)]);
        Assert.Contains(new string('k', 3_000), (await RecordOf(kept)).Parameters, StringComparison.Ordinal);

        // And no request body is read past a few megabytes.
        using var http = new HttpClient();
        using var huge = new StringContent("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"" + new string('x', 4 << 20) + "\"}}", System.Text.Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_server.Endpoint, "/mcp")) { Content = huge };
        request.Headers.Authorization = new("Bearer", _gateway.Mint("narrow"));
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        // Asked first, so the refusal is heard before the body is sent (the server closes the connection on it).
        request.Headers.ExpectContinue = true;
        using var response = await http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task A_json_value_nested_past_what_json_readers_accept_comes_back_as_its_text()
    {
        // 63 deep, and three more in the result: read back whole, it broke the answer after the call was recorded allowed.
        var result = await _client.QueryAsync("select (repeat('[', 63) || repeat(']', 63))::jsonb as deep, (repeat('[', 40) || repeat(']', 40))::jsonb as shallow");

        Assert.NotEqual(true, result.IsError);
        var row = result.Structured().GetProperty("rows")[0];
        Assert.Equal(new string('[', 63) + new string(']', 63), row[0].GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Array, row[1].ValueKind);
        Assert.Equal(Verdict.Allowed, (await RecordOf(result)).Decision);
    }

    [Fact]
    public async Task A_statement_whose_plan_nests_deep_is_judged_and_one_past_what_the_gateway_reads_is_refused_saying_why()
    {
        // Each LIMIT keeps its subquery a plan level of its own: two JSON levels each in EXPLAIN's output.
        static string Nested(int levels) =>
            Enumerable.Range(0, levels).Aggregate("select 1 as x", (inner, i) => $"select * from ({inner} limit 1) s{i}");

        var gateway = TestGateway.Create(pg);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("narrow"));

        var deep = await client.QueryAsync(Nested(60));
        Assert.NotEqual(true, deep.IsError);
        Assert.Equal(1, deep.Structured().GetProperty("rows")[0][0].GetInt32());

        var deeper = await client.QueryAsync(Nested(600));
        Assert.True(deeper.IsError);
        Assert.Equal("database.rejected", deeper.Rule());
        Assert.Contains("the statement's plan nests more than 512 levels deep", deeper.Text());
        Assert.Equal(Verdict.Failed, (await server.State.GetAsync(deeper.AuditId(), CancellationToken.None))!.Decision);
    }

    [Fact]
    public async Task A_database_error_quoting_megabytes_of_input_is_clipped_before_it_is_recorded_or_returned()
    {
        var result = await _client.QueryAsync("select repeat('x', 10000000)::int");

        Assert.Equal("database.rejected", result.Rule());
        Assert.Contains("invalid input syntax for type integer", result.Text());
        Assert.Contains("more characters not shown", result.Text());
        Assert.InRange(result.Text().Length, 1, 5_000);
        var record = await RecordOf(result);
        Assert.Equal(Verdict.Failed, record.Decision);
        Assert.InRange(record.Reason!.Length, 1, 5_000);
    }

    [Fact]
    public async Task A_syntax_error_returns_postgres_own_message_with_a_position_in_the_agents_text()
    {
        var result = await _client.QueryAsync("select id fro orders");
        Assert.Equal("database.rejected", result.Rule());
        Assert.Contains("syntax error at or near \"orders\" at character 15", result.Text());
        Assert.DoesNotContain("EXPLAIN", result.Text());
    }

    [Fact]
    public async Task Sql_over_the_size_limit_is_refused_before_parsing()
    {
        var result = await _client.QueryAsync("select '" + new string('x', 5000) + "'");
        Assert.Equal("sql.too_large", result.Rule());
        Assert.Contains("4096", result.Text());
    }

    [Fact]
    public async Task An_unknown_connection_is_refused_naming_the_real_ones()
    {
        var result = await _client.QueryAsync("select 1", connection: "warehouse");
        Assert.Equal("request.unknown_connection", result.Rule());
        Assert.Contains("shop", result.Text());
    }

    [Fact]
    public async Task Max_rows_is_capped_by_the_gateway_limit()
    {
        var result = await _client.QueryAsync("select id from orders", maxRows: 10_000);
        Assert.Equal(50, result.Structured().GetProperty("row_count").GetInt32());
        Assert.True(result.Structured().GetProperty("truncated").GetBoolean());
        var zero = await _client.QueryAsync("select id from orders", maxRows: 0);
        Assert.Equal("request.bad_max_rows", zero.Rule());
    }

    [Fact]
    public async Task A_token_passed_as_a_tool_argument_is_ignored()
    {
        var result = await _client.CallToolAsync("query", new Dictionary<string, object?>
        {
            ["connection"] = "shop",
            ["sql"] = "select count(*) from customers",
            ["token"] = _gateway.Mint("analyst"),
        });
        Assert.Equal("grant.relation_not_granted", result.Rule());
        Assert.Equal("narrow", (await RecordOf(result)).Agent);
    }

    [Theory]
    [InlineData("admin", "1h", "request.bad_access")]
    [InlineData("read", "forever", "request.bad_duration")]
    [InlineData("read", "30d", "request.bad_duration")]
    public async Task A_malformed_access_request_is_refused(string access, string duration, string rule)
    {
        var result = await _client.CallToolAsync("request_access", new Dictionary<string, object?>
        {
            ["connection"] = "shop",
            ["tables"] = new[] { "public.customers" },
            ["access"] = access,
            ["reason"] = "testing",
            ["duration"] = duration,
        });
        Assert.Equal(rule, result.Rule());
    }

    public static TheoryData<string, Dictionary<string, object?>, string> MisshapenCalls => new()
    {
        { "query", new() { ["connection"] = "shop" }, "query: 'sql' is required" },
        { "describe_schema", new() { ["table"] = "orders" }, "describe_schema: 'connection' is required" },
        { "query", new() { ["connection"] = "shop", ["sql"] = "select 1", ["params"] = "x" }, "query: 'params' must be" },
        { "query", new() { ["connection"] = "shop", ["sql"] = "select 1", ["max_rows"] = 1.5 }, "query: 'max_rows' must be a whole number" },
        { "query", new() { ["connection"] = "shop", ["sql"] = 7 }, "query: 'sql' must be text, not the number 7" },
        { "query", new() { ["connection"] = "shop", ["sql"] = "select 1", ["max_rows"] = "ten" }, "query: 'max_rows' must be a whole number or null, not text" },
        { "request_access", new() { ["status_only"] = "yes" }, "request_access: 'status_only' must be a boolean, not text" },
        { "request_access", new() { ["tables"] = new object[] { "public.orders", 3 } }, "request_access: 'tables'[1] must be text" },
    };

    [Theory]
    [MemberData(nameof(MisshapenCalls))]
    public async Task A_call_whose_arguments_do_not_fit_its_tool_is_refused_saying_which_and_recorded(string tool, Dictionary<string, object?> arguments, string says)
    {
        var result = await _client.CallToolAsync(tool, arguments);

        Assert.True(result.IsError);
        Assert.Equal("request.bad_arguments", result.Rule());
        Assert.Contains(says, result.Text());
        var record = await RecordOf(result);
        Assert.Equal((Verdict.Denied, "narrow", tool), (record.Decision, record.Agent, record.Tool));
    }

    [Fact]
    public async Task A_number_sent_as_text_is_taken_as_the_sdk_takes_it()
    {
        var result = await _client.CallToolAsync("query", new Dictionary<string, object?> { ["connection"] = "shop", ["sql"] = "select generate_series(1, 5)", ["max_rows"] = "2" });

        Assert.NotEqual(true, result.IsError);
        Assert.Equal(2, result.Structured().GetProperty("row_count").GetInt32());
    }

    [Fact]
    public async Task A_call_to_a_tool_that_does_not_exist_is_recorded_and_answered_as_a_protocol_error()
    {
        var error = await Assert.ThrowsAsync<ModelContextProtocol.McpProtocolException>(() => _client.CallToolAsync("drop_database", new Dictionary<string, object?>()).AsTask());

        Assert.Contains("drop_database", error.Message);
        var record = Assert.Single(await _server.State.ListAsync(new AuditQuery(Tool: ToolCallGuard.UnknownTool), CancellationToken.None));
        Assert.Equal(("request.unknown_tool", "narrow", Verdict.Denied), (record.Rule, record.Agent, record.Decision));
        Assert.Contains("there is no tool named 'drop_database'", record.Reason);
    }

    [Theory]
    [InlineData("tables")]
    [InlineData("schemas")]
    public async Task A_null_in_an_access_requests_lists_is_refused_saying_why_and_recorded(string list)
    {
        var result = await _client.CallToolAsync("request_access", new Dictionary<string, object?>
        {
            ["connection"] = "shop",
            [list] = new string?[] { null },
            ["access"] = "read",
            ["reason"] = "testing",
        });

        Assert.Equal("request.bad_tables", result.Rule());
        Assert.Contains("null is not one", result.Text());
        Assert.Equal(Verdict.Denied, (await RecordOf(result)).Decision);
    }
}
