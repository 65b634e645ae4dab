using System.Globalization;
using System.Text.Json;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.McpServer.Hosting;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace Gatehouse.McpServer.Tools;

/// <summary>
/// Runs before every <c>tools/call</c>: a call whose arguments do not fit its tool's input schema (one missing, one of the
/// wrong type, text that is not valid Unicode) is refused through the pipeline, so it is verified, recorded and answered
/// with what is wrong, instead of failing in argument binding with the SDK's generic error and no record. A call to a tool
/// that does not exist is recorded too, then answered by the SDK as the protocol error MCP prescribes.
/// </summary>
public sealed class ToolCallGuard(IEnumerable<McpServerTool> tools, GatehouseTools gatehouse)
{
    /// <summary>The tool a call to a tool that does not exist is recorded under; the name it asked for is in the reason.</summary>
    public const string UnknownTool = "(unknown tool)";

    private readonly Dictionary<string, JsonElement> _schemas = tools.ToDictionary(t => t.ProtocolTool.Name, t => t.ProtocolTool.InputSchema, StringComparer.Ordinal);

    public async ValueTask<CallToolResult> CallAsync(
        RequestContext<CallToolRequestParams> request, McpRequestHandler<CallToolRequestParams, CallToolResult> next, CancellationToken cancellationToken)
    {
        var name = request.Params?.Name ?? "";
        if (!_schemas.TryGetValue(name, out var schema))
        {
            // Recorded under one fixed name, counted against the caller's quotas like any tool call: a name the client
            // chose could pass for a real tool in the log ("query" + U+200B) or for a session opening, which quotas skip.
            await gatehouse.RefuseAsync(
                UnknownTool, request.Server, Decision.Deny("request.unknown_tool", $"there is no tool named '{Cli.Output.Clip(name, 100)}'; the tools are {string.Join(", ", _schemas.Keys)}"), cancellationToken);
            return await next(request, cancellationToken);
        }

        return Problem(schema, request.Params?.Arguments) is { } problem
            ? await gatehouse.RefuseAsync(name, request.Server, Decision.Deny("request.bad_arguments", $"{name}: {problem}"), cancellationToken)
            : await next(request, cancellationToken);
    }

    /// <summary>What is wrong with <paramref name="arguments"/> for a tool whose input schema is <paramref name="schema"/>, or null.</summary>
    internal static string? Problem(JsonElement schema, IDictionary<string, JsonElement>? arguments)
    {
        if (schema.TryGetProperty("required", out var required))
        {
            foreach (var name in required.EnumerateArray().Select(r => r.GetString()!))
            {
                if (arguments?.ContainsKey(name) != true)
                {
                    return $"'{name}' is required";
                }
            }
        }

        if (arguments is null)
        {
            return null;
        }

        // Arguments the tool does not take are ignored, as the SDK ignores them (a token passed as one is never read).
        var properties = schema.TryGetProperty("properties", out var p) ? p : default;
        foreach (var (name, value) in arguments)
        {
            if (properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty(name, out var property) && Mismatch(property, value, $"'{name}'") is { } problem)
            {
                return problem;
            }
        }

        return null;
    }

    private static string? Mismatch(JsonElement schema, JsonElement value, string what)
    {
        if (schema.TryGetProperty("type", out var type))
        {
            var types = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString()).ToList() : [type.GetString()];
            if (!types.Any(t => Fits(t, value)))
            {
                return $"{what} must be {string.Join(" or ", types.Select(Described))}, not {Described(value)}";
            }

            if (value.ValueKind == JsonValueKind.Array && schema.TryGetProperty("items", out var items))
            {
                var index = 0;
                foreach (var item in value.EnumerateArray())
                {
                    if (Mismatch(items, item, $"{what}[{index++}]") is { } problem)
                    {
                        return problem;
                    }
                }
            }
        }

        return BrokenText(value) ? $"{what} holds text that is not valid Unicode (a lone surrogate)" : null;
    }

    private static bool Fits(string? type, JsonElement value) => type switch
    {
        "string" => value.ValueKind == JsonValueKind.String,
        // The SDK binds numbers sent as text ("10"), as many model clients send them; so does this check.
        "integer" => value.ValueKind == JsonValueKind.Number ? value.TryGetInt32(out _)
            : value.ValueKind == JsonValueKind.String && int.TryParse(value.GetString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _),
        "number" => value.ValueKind == JsonValueKind.Number
            || (value.ValueKind == JsonValueKind.String && double.TryParse(value.GetString(), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out _)),
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "array" => value.ValueKind == JsonValueKind.Array,
        "object" => value.ValueKind == JsonValueKind.Object,
        "null" => value.ValueKind == JsonValueKind.Null,
        _ => true,
    };

    private static string Described(string? type) => type switch
    {
        "string" => "text",
        "integer" => "a whole number",
        "array" => "a list",
        "object" => "an object",
        "null" => "null",
        null => "any value",
        _ => $"a {type}",
    };

    private static string Described(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "text",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => "null",
    };

    // JSON may escape half a surrogate pair (\ud800), which no .NET string can hold.
    private static bool BrokenText(JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                return JsonText.Read(value) is null;

            case JsonValueKind.Array:
                return value.EnumerateArray().Any(BrokenText);
            case JsonValueKind.Object:
                return value.EnumerateObject().Any(p => BrokenText(p.Value));
            default:
                return false;
        }
    }
}
