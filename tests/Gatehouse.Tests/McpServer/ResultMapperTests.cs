using System.Text.Json;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Tools;
using ModelContextProtocol.Protocol;

namespace Gatehouse.Tests.McpServer;

public sealed class ResultMapperTests
{
    private static CallToolResult Map(QueryResult result) =>
        ResultMapper.ToResult(new CallOutcome("aud_1", Decision.Allow("grant.read", "read granted"), result));

    private static string Text(CallToolResult result) => Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;

    [Fact]
    public void A_result_is_structured_content_and_the_same_json_as_text()
    {
        var result = new QueryResult(
            [new("id", "bigint"), new("name", "text"), new("doc", "jsonb"), new("raw", "json"), new("tags", "text[]"), new("price", "numeric")],
            [[7L, "Lucía \"Lu\" Fernández", "{\"a\": [1, 2]}", "not json {", new List<object?> { "x", null }, 12.50m]],
            true,
            "row limit of 1 reached",
            null)
        { Masked = new Dictionary<string, int> { ["email"] = 2 }, MaskedColumns = new Dictionary<string, IReadOnlyList<string>> { ["name"] = ["email"] } };

        var mapped = Map(result);

        Assert.Null(mapped.IsError);
        var text = Text(mapped);
        Assert.Contains("Lucía \\\"Lu\\\" Fernández", text);
        using var fromText = JsonDocument.Parse(text);
        var structured = mapped.StructuredContent!.Value;
        Assert.Equal(fromText.RootElement.GetRawText(), structured.GetRawText());
        const string Expected = """{"columns":[{"name":"id","type":"bigint"},{"name":"name","type":"text"},{"name":"doc","type":"jsonb"},{"name":"raw","type":"json"},{"name":"tags","type":"text[]"},{"name":"price","type":"numeric"}],"rows":[[7,"Lucía \"Lu\" Fernández",{"a": [1, 2]},"not json {",["x",null],12.50]],"row_count":1,"truncated":true,"truncated_because":"row limit of 1 reached","masked":{"email":2},"masked_columns":{"name":["email"]},"audit_id":"aud_1"}""";
        Assert.Equal(Expected, text);
    }

    [Theory]
    [InlineData(ResultMapper.MaxJsonValueDepth - 1, true)]
    [InlineData(ResultMapper.MaxJsonValueDepth + 1, false)]
    [InlineData(200, false)]
    public void A_json_value_goes_out_as_json_only_while_the_whole_answer_stays_readable(int depth, bool asJson)
    {
        var value = new string('[', depth) + new string(']', depth);

        var mapped = Map(new QueryResult([new("doc", "jsonb")], [[value]], false, null, null));

        var cell = mapped.StructuredContent!.Value.GetProperty("rows")[0][0];
        Assert.Equal(asJson ? JsonValueKind.Array : JsonValueKind.String, cell.ValueKind);
        Assert.Equal(value, asJson ? cell.GetRawText() : cell.GetString());
    }

    [Fact]
    public void A_result_over_the_structured_limit_comes_back_once_as_complete_text()
    {
        var rows = Enumerable.Range(0, 40_000).Select(i => new object?[] { (long)i, $"value number {i} padded out to some length" }).ToList();
        var mapped = Map(new QueryResult([new("n", "bigint"), new("v", "text")], rows, false, null, null));

        var text = Text(mapped);
        Assert.True(text.Length > ResultMapper.StructuredContentLimit);
        Assert.Null(mapped.StructuredContent);
        using var json = JsonDocument.Parse(text);
        Assert.Equal(40_000, json.RootElement.GetProperty("row_count").GetInt32());
        Assert.Equal("value number 39999 padded out to some length", json.RootElement.GetProperty("rows")[39_999][1].GetString());
        Assert.Equal("aud_1", json.RootElement.GetProperty("audit_id").GetString());
    }

    [Fact]
    public void Results_mapped_one_after_another_on_a_thread_each_hold_only_their_own_rows()
    {
        // Small results share the thread's buffer; a large one in between grows it past what is kept.
        static QueryResult Rows(int count, string label) =>
            new([new("n", "bigint"), new("v", "text")], Enumerable.Range(0, count).Select(i => new object?[] { (long)i, $"{label} {i}" }).ToList(), false, null, null);

        var first = Text(Map(Rows(2, "first")));
        var large = Text(Map(Rows(5_000, "large")));
        var second = Text(Map(Rows(1, "second")));
        var third = Text(Map(Rows(1, "x")));

        Assert.Equal("""{"columns":[{"name":"n","type":"bigint"},{"name":"v","type":"text"}],"rows":[[0,"first 0"],[1,"first 1"]],"row_count":2,"truncated":false,"audit_id":"aud_1"}""", first);
        using (var json = JsonDocument.Parse(large))
        {
            Assert.Equal(5_000, json.RootElement.GetProperty("row_count").GetInt32());
        }

        Assert.Equal("""{"columns":[{"name":"n","type":"bigint"},{"name":"v","type":"text"}],"rows":[[0,"second 0"]],"row_count":1,"truncated":false,"audit_id":"aud_1"}""", second);
        Assert.Equal("""{"columns":[{"name":"n","type":"bigint"},{"name":"v","type":"text"}],"rows":[[0,"x 0"]],"row_count":1,"truncated":false,"audit_id":"aud_1"}""", third);
    }

    [Fact]
    public void A_write_says_how_many_rows_it_affected()
    {
        var mapped = Map(new QueryResult([], [], false, null, 3));

        using var json = JsonDocument.Parse(Text(mapped));
        Assert.Equal(3, json.RootElement.GetProperty("affected_rows").GetInt64());
        Assert.Equal(0, json.RootElement.GetProperty("row_count").GetInt32());
        Assert.False(json.RootElement.TryGetProperty("masked", out _));
    }

    [Fact]
    public void A_filed_request_whose_neighbours_could_not_be_listed_says_so_instead_of_listing_none()
    {
        var filed = new AccessRequest("req_1", "agent-a", "sub", "https://issuer", "shop", [new RelationName("public", "orders")], AccessLevel.Read, "report", TimeSpan.FromHours(1), AccessRequestStatus.Pending, DateTimeOffset.UnixEpoch);
        var status = new RequestStatus(filed, [], []) { NotListed = "the state store did not answer" };

        var mapped = ResultMapper.ToResult(new CallOutcome("aud_1", Decision.Allow("access.requested", "request req_1 is pending"), status));

        var json = mapped.StructuredContent!.Value;
        Assert.Equal("req_1", json.GetProperty("request_id").GetString());
        Assert.Equal("the state store did not answer", json.GetProperty("your_requests_unavailable").GetString());
        Assert.False(json.TryGetProperty("your_requests", out _));
    }
}
