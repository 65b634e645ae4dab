using System.Text.Json;
using System.Text.Json.Serialization;
using Gatehouse.Enforcement.Audit;

namespace Gatehouse.McpServer.Hosting;

/// <summary>One audit record as one line of JSON: the format of <c>audit export</c> and of the live sink, so a SIEM reads both alike.</summary>
public static class AuditJson
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Line(AuditRecord record) => JsonSerializer.Serialize(record, Options);
}
