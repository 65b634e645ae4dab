using System.Text.Json;
using Gatehouse.Enforcement.Execution;

namespace Gatehouse.Enforcement.Audit;

/// <summary>
/// The result as the agent received it, for a <c>full</c> capture: column names and rows as JSON, whole rows only, cut at a
/// byte bound. Built from the masked result, so it holds exactly what left the gateway and nothing more.
/// </summary>
public static class ResultExcerpt
{
    public static string Write(QueryResult masked, int maxBytes)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartArray("columns");
            foreach (var column in masked.Columns)
            {
                json.WriteStringValue(column.Name);
            }

            json.WriteEndArray();
            json.WriteStartArray("rows");
            var kept = 0;
            foreach (var row in masked.Rows)
            {
                var text = JsonSerializer.Serialize(row);
                // Room is left for the closing fields, so the excerpt is always valid JSON within the bound.
                if (json.BytesPending + json.BytesCommitted + text.Length > maxBytes - 96)
                {
                    break;
                }

                json.WriteRawValue(text, skipInputValidation: true);
                kept++;
            }

            json.WriteEndArray();
            json.WriteNumber("row_count", masked.Rows.Count);
            if (kept < masked.Rows.Count)
            {
                json.WriteNumber("rows_kept", kept);
            }

            if (masked.AffectedRows is { } affected)
            {
                json.WriteNumber("affected_rows", affected);
            }

            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
