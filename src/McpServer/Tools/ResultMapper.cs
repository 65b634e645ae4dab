using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using ModelContextProtocol.Protocol;

namespace Gatehouse.McpServer.Tools;

/// <summary>Turns pipeline outcomes into MCP tool results: structured content plus the same JSON as text for older clients.</summary>
public static class ResultMapper
{
    // Agents read the text content; keep quotes and non-ASCII readable instead of \u-escaped.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Results up to this size come back twice, as structured content and as the same JSON in a text block (MCP's advice for
    /// older clients). Larger ones come back once, as text: the tools declare no output schema, so structured content is
    /// optional, and a large result held and sent twice would double the gateway's memory for it.
    /// </summary>
    public const int StructuredContentLimit = 1 << 20;

    public static CallToolResult ToResult(CallOutcome outcome)
    {
        if (!outcome.Decision.IsAllowed)
        {
            var error = new JsonObject
            {
                ["error"] = new JsonObject
                {
                    ["verdict"] = outcome.Decision.Verdict.ToString().ToLowerInvariant(),
                    ["rule"] = outcome.Decision.Rule,
                    ["message"] = outcome.Decision.Reason,
                },
                ["audit_id"] = outcome.AuditId,
            };
            if (outcome.Payload is PendingApproval pending)
            {
                error["pending_approval"] = new JsonObject
                {
                    ["request_id"] = pending.RequestId,
                    ["approvers"] = new JsonArray(pending.Approvers.Select(a => (JsonNode?)a).ToArray()),
                    ["approvals_required"] = pending.Required,
                    ["approvals"] = pending.Approvals,
                    ["expires_at"] = pending.ExpiresAt,
                    ["dry_run_affected_rows"] = pending.DryRunRows,
                    ["resume"] = pending.Resume,
                };
            }

            var text = $"{outcome.Decision.Verdict} by rule {outcome.Decision.Rule}: {outcome.Decision.Reason}"
                + (outcome.AuditId is null ? "" : $" (audit {outcome.AuditId})");
            return new CallToolResult { IsError = true, Content = [new TextContentBlock { Text = text }], StructuredContent = JsonSerializer.SerializeToElement<JsonNode>(error) };
        }

        return outcome.Payload switch
        {
            QueryResult result => Success(writer => WriteQuery(writer, result), outcome.AuditId, result.Bytes),
            IReadOnlyList<TableDescription> tables => Success(Tables(tables), outcome.AuditId),
            RequestStatus status => Success(Status(status), outcome.AuditId),
            _ => Success(new JsonObject(), outcome.AuditId),
        };
    }

    private static CallToolResult Success(JsonObject body, string? auditId) => Success(
        writer =>
        {
            foreach (var (name, value) in body)
            {
                writer.WritePropertyName(name);
                WriteNode(writer, value);
            }
        },
        auditId,
        sizeHint: 0);

    // The body's members and the audit id, written once as UTF-8: the text block and the structured content are two
    // readings of the same bytes, so a large result is never held as a tree of JSON nodes.
    private static CallToolResult Success(Action<Utf8JsonWriter> writeMembers, string? auditId, long sizeHint)
    {
        // Most results are small: those are written into this thread's buffer and writer, which the text and the
        // structured content are copied out of, and the buffer is wiped after: it keeps no caller's rows. A large result
        // gets a buffer of its own, sized by the hint and dropped after.
        var reuse = sizeHint <= ReusedBufferLimit / 2;
        var buffer = reuse ? t_buffer ??= new ArrayBufferWriter<byte>(4096) : new ArrayBufferWriter<byte>((int)Math.Clamp(sizeHint + (sizeHint / 4) + 256, 256, Array.MaxLength));
        var writer = reuse ? t_writer ??= new Utf8JsonWriter(buffer, WriterOptions) : new Utf8JsonWriter(buffer, WriterOptions);
        try
        {
            writer.WriteStartObject();
            writeMembers(writer);
            writer.WriteString("audit_id", auditId);
            writer.WriteEndObject();
            writer.Flush();
            var json = buffer.WrittenSpan;
            return new CallToolResult { Content = [new TextContentBlock { Text = Encoding.UTF8.GetString(json) }], StructuredContent = json.Length > StructuredContentLimit ? null : JsonElement.Parse(json) };
        }
        finally
        {
            if (reuse)
            {
                writer.Reset();
                buffer.Clear();
                if (buffer.Capacity > ReusedBufferLimit)
                {
                    // A hint that was too low grew the kept buffer: let it go rather than hold it for the thread's life.
                    t_buffer = null;
                    t_writer = null;
                }
            }
            else
            {
                writer.Dispose();
            }
        }
    }

    private const int ReusedBufferLimit = 64 * 1024;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    private static void WriteQuery(Utf8JsonWriter writer, QueryResult result)
    {
        writer.WriteStartArray("columns");
        foreach (var column in result.Columns)
        {
            writer.WriteStartObject();
            writer.WriteString("name", column.Name);
            writer.WriteString("type", column.Type);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteStartArray("rows");
        foreach (var row in result.Rows)
        {
            writer.WriteStartArray();
            for (var i = 0; i < row.Length; i++)
            {
                WriteValue(writer, row[i], result.Columns[i].Type);
            }

            writer.WriteEndArray();
        }

        writer.WriteEndArray();
        writer.WriteNumber("row_count", result.Rows.Count);
        writer.WriteBoolean("truncated", result.Truncated);
        if (result.TruncatedBecause is not null)
        {
            writer.WriteString("truncated_because", result.TruncatedBecause);
        }

        if (result.AffectedRows is { } affected)
        {
            writer.WriteNumber("affected_rows", affected);
        }

        if (result.Masked.Count > 0)
        {
            writer.WriteStartObject("masked");
            foreach (var (kind, count) in result.Masked)
            {
                writer.WriteNumber(kind, count);
            }

            writer.WriteEndObject();
        }

        if (result.MaskedColumns.Count > 0)
        {
            writer.WriteStartObject("masked_columns");
            foreach (var (column, kinds) in result.MaskedColumns)
            {
                writer.WriteStartArray(column);
                foreach (var kind in kinds)
                {
                    writer.WriteStringValue(kind);
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value, string type)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string s when type is "json" or "jsonb":
                WriteJsonOrText(writer, s);
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case long l:
                writer.WriteNumberValue(l);
                break;
            case decimal m:
                writer.WriteNumberValue(m);
                break;
            case double d:
                writer.WriteNumberValue(d);
                break;
            case IEnumerable<object?> list:
                writer.WriteStartArray();
                foreach (var item in list)
                {
                    WriteValue(writer, item, "");
                }

                writer.WriteEndArray();
                break;
            default:
                writer.WriteStringValue(value.ToString());
                break;
        }
    }

    /// <summary>
    /// A json or jsonb value nested deeper than this goes out as its text: inside the result's own levels and the MCP message
    /// around them, it would take the whole past the 64 levels JSON readers accept, and the answer could not be read or sent.
    /// </summary>
    public const int MaxJsonValueDepth = 48;

    private static readonly JsonReaderOptions JsonValueReader = new() { MaxDepth = MaxJsonValueDepth };

    // A json/jsonb value goes out as JSON; text PostgreSQL called JSON that does not parse, or nests past MaxJsonValueDepth,
    // goes out as a string. One pass reads it (its bytes wiped after: they are the caller's data), then it is copied as is.
    private static void WriteJsonOrText(Utf8JsonWriter writer, string text)
    {
        var rented = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetByteCount(text));
        var utf8 = rented.AsSpan(0, Encoding.UTF8.GetBytes(text, rented));
        try
        {
            if (IsJson(utf8))
            {
                writer.WriteRawValue(utf8, skipInputValidation: true);
            }
            else
            {
                writer.WriteStringValue(text);
            }
        }
        finally
        {
            utf8.Clear();
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static bool IsJson(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, JsonValueReader);
        try
        {
            while (reader.Read())
            {
            }

            return reader.BytesConsumed > 0;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static void WriteNode(Utf8JsonWriter writer, JsonNode? node)
    {
        if (node is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            node.WriteTo(writer);
        }
    }

    private static JsonObject Tables(IReadOnlyList<TableDescription> tables) => new()
    {
        ["tables"] = new JsonArray(tables.Select(t => (JsonNode)new JsonObject
        {
            ["schema"] = t.Name.Schema,
            ["name"] = t.Name.Name,
            ["kind"] = t.Kind,
            ["comment"] = t.Comment,
            ["columns"] = new JsonArray(t.Columns.Select(Column).ToArray()),
            ["primary_key"] = new JsonArray(t.PrimaryKey.Select(k => (JsonNode?)k).ToArray()),
            ["foreign_keys"] = new JsonArray(t.ForeignKeys.Select(f => (JsonNode)new JsonObject
            {
                ["columns"] = new JsonArray(f.Columns.Select(k => (JsonNode?)k).ToArray()),
                ["references"] = f.References.ToString(),
                ["referenced_columns"] = new JsonArray(f.ReferencedColumns.Select(k => (JsonNode?)k).ToArray()),
            }).ToArray()),
        }).ToArray()),
    };

    private static JsonNode Column(ColumnDescription column)
    {
        var json = new JsonObject
        {
            ["name"] = column.Name,
            ["type"] = column.Type,
            ["nullable"] = column.Nullable,
            ["comment"] = column.Comment,
        };
        if (column.SensitiveClass is not null)
        {
            json["sensitive"] = column.SensitiveClass;
            json["masked_for_you"] = column.MaskedForCaller;
        }

        return json;
    }

    private static JsonObject Status(RequestStatus status)
    {
        var json = status.Created is null ? new JsonObject() : Request(status.Created);
        if (status.NotListed is not null)
        {
            json["your_requests_unavailable"] = status.NotListed;
            return json;
        }

        json["your_requests"] = new JsonArray(
            status.Access.Select(r => (JsonNode)new JsonObject
            {
                ["id"] = r.Id,
                ["kind"] = "access",
                ["status"] = r.Status.ToString().ToLowerInvariant(),
                ["what"] = $"{r.AccessText} {r.Scope} on {r.Connection} for {Durations.Format(r.Duration)}",
                ["approvals"] = $"{r.Approvals} of {r.Required}",
                ["grant_expires_at"] = r.GrantExpiresAt?.ToString("O"),
            })
            .Concat(status.Statements.Select(s => (JsonNode)new JsonObject
            {
                ["id"] = s.Id,
                ["kind"] = "statement",
                ["status"] = s.Status.ToString().ToLowerInvariant(),
                ["what"] = s.Sql.Length <= 200 ? s.Sql : s.Sql[..200] + "…",
                ["approvals"] = $"{s.Approvals} of {s.Required}",
            }))
            .ToArray());
        return json;
    }

    private static JsonObject Request(AccessRequest request) => new()
    {
        ["request_id"] = request.Id,
        ["status"] = request.Status.ToString().ToLowerInvariant(),
        ["connection"] = request.Connection,
        ["tables"] = new JsonArray(request.Tables.Select(t => (JsonNode?)t.ToString()).ToArray()),
        ["schemas"] = new JsonArray(request.Schemas.Select(t => (JsonNode?)t).ToArray()),
        ["access"] = request.AccessText,
        ["duration"] = Durations.Format(request.Duration),
        ["approvals"] = $"{request.Approvals} of {request.Required}",
        ["expires_if_undecided_at"] = request.UndecidedExpiry.ToString("O"),
        ["next_step"] = (request.Required > 1 ? $"{request.Required} approvers must accept this request" : "An approver must accept this request")
            + " (gatehouse approvals approve " + request.Id + "). Retry your query after that.",
    };
}
