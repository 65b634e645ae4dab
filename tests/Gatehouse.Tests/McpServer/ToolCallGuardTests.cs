using System.Text.Json;
using Gatehouse.McpServer.Tools;
using ModelContextProtocol.Server;

namespace Gatehouse.Tests.McpServer;

/// <summary>Arguments checked against a tool's input schema, as the SDK generates it, before the tool binds them.</summary>
public sealed class ToolCallGuardTests
{
    // The query tool's input schema as the SDK generates it from the method, as served.
    private static readonly JsonElement Schema = McpServerTool.Create(
        typeof(GatehouseTools).GetMethod(nameof(GatehouseTools.Query))!, _ => throw new InvalidOperationException("only the schema is read")).ProtocolTool.InputSchema;

    private static string? Problem(string arguments) =>
        ToolCallGuard.Problem(Schema, JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(arguments));

    [Theory]
    [InlineData("""{"connection":"shop","sql":"select 1"}""")]
    [InlineData("""{"connection":"shop","sql":"select $1","params":[1,"x",null,{"a":[true]}],"max_rows":10}""")]
    [InlineData("""{"connection":"shop","sql":"select 1","params":null,"max_rows":null,"token":"ignored"}""")]
    [InlineData("""{"connection":"shop","sql":"select 1","max_rows":"10"}""")]
    public void Arguments_that_fit_pass(string arguments) => Assert.Null(Problem(arguments));

    [Theory]
    [InlineData("""{}""", "'connection' is required")]
    [InlineData("""{"connection":"shop"}""", "'sql' is required")]
    [InlineData("""{"connection":"shop","sql":null}""", "'sql' must be text, not null")]
    [InlineData("""{"connection":"shop","sql":"select 1","max_rows":3000000000}""", "'max_rows' must be a whole number or null, not the number 3000000000")]
    [InlineData("""{"connection":"shop","sql":"select 1","params":{"a":1}}""", "'params' must be a list or null, not an object")]
    [InlineData("""{"connection":"shop","sql":"select $1","params":["\ud800"]}""", "'params'[0] holds text that is not valid Unicode (a lone surrogate)")]
    [InlineData("""{"connection":"shop","sql":"select '\udc00'"}""", "'sql' holds text that is not valid Unicode (a lone surrogate)")]
    public void Arguments_that_do_not_fit_are_named_with_what_is_wrong(string arguments, string problem) =>
        Assert.Equal(problem, Problem(arguments));
}
