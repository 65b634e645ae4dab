using System.Text.Json;

namespace Gatehouse.Enforcement.Execution;

/// <summary>
/// A (masked) result as JSON, for keeping it until its requester comes back for it, and reading it again. A kept result
/// also says under which rights it was masked, so it is handed over only while they still hold.
/// </summary>
public static class QueryResultCodec
{
    private sealed record Stored(
        IReadOnlyList<ResultColumn> Columns,
        IReadOnlyList<object?[]> Rows,
        bool Truncated,
        string? TruncatedBecause,
        long? AffectedRows,
        IReadOnlyDictionary<string, int> Masked,
        IReadOnlyDictionary<string, IReadOnlyList<string>> MaskedColumns,
        string? Rights);

    public static string Write(QueryResult result, string? rights = null) =>
        JsonSerializer.Serialize(new Stored(result.Columns, result.Rows, result.Truncated, result.TruncatedBecause, result.AffectedRows, result.Masked, result.MaskedColumns, rights));

    /// <summary>The rights a kept result was masked under; null for one written without them (then it matches none).</summary>
    public static string? Rights(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.TryGetProperty("Rights", out var rights) && rights.ValueKind == JsonValueKind.String ? rights.GetString() : null;
    }

    public static QueryResult Read(string json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var columns = root.GetProperty("Columns").EnumerateArray()
            .Select(c => new ResultColumn(c.GetProperty("Name").GetString()!, c.GetProperty("Type").GetString()!)).ToList();
        var rows = root.GetProperty("Rows").EnumerateArray().Select(r => r.EnumerateArray().Select(Value).ToArray()).ToList();
        return new QueryResult(
            columns,
            rows,
            root.GetProperty("Truncated").GetBoolean(),
            root.GetProperty("TruncatedBecause").GetString(),
            root.GetProperty("AffectedRows").ValueKind == JsonValueKind.Null ? null : root.GetProperty("AffectedRows").GetInt64())
        {
            Masked = root.GetProperty("Masked").Deserialize<Dictionary<string, int>>() ?? [],
            MaskedColumns = (root.GetProperty("MaskedColumns").Deserialize<Dictionary<string, List<string>>>() ?? [])
                .ToDictionary(c => c.Key, c => (IReadOnlyList<string>)c.Value, StringComparer.Ordinal),
        };
    }

    // Back to the value kinds a fresh result holds: null, bool, long, decimal, double, string, or a list of those. Only a
    // double is written with an exponent (1E+30, 1E-30): read as a decimal, the first failed and lost the kept result, and
    // the second became 0.
    private static object? Value(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => value.TryGetInt64(out var whole) ? whole
            : value.GetRawText().AsSpan().IndexOfAny('e', 'E') < 0 && value.TryGetDecimal(out var exact) ? exact
            : value.GetDouble(),
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Array => value.EnumerateArray().Select(Value).ToList(),
        _ => value.GetRawText(),
    };
}
