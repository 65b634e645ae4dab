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
    private static readonly JsonSerializerOptions TextOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

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

        var body = outcome.Payload switch
        {
            QueryResult result => Query(result),
            IReadOnlyList<TableDescription> tables => Tables(tables),
            RequestStatus status => Status(status),
            _ => new JsonObject(),
        };
        body["audit_id"] = outcome.AuditId;
        var json = body.ToJsonString(TextOptions);
        return new CallToolResult { Content = [new TextContentBlock { Text = json }], StructuredContent = JsonElement.Parse(json) };
    }

    private static JsonObject Query(QueryResult result)
    {
        var json = new JsonObject
        {
            ["columns"] = new JsonArray(result.Columns.Select(c => (JsonNode)new JsonObject { ["name"] = c.Name, ["type"] = c.Type }).ToArray()),
            ["rows"] = new JsonArray(result.Rows.Select(row => (JsonNode)new JsonArray(row.Select((v, i) => Value(v, result.Columns[i].Type)).ToArray())).ToArray()),
            ["row_count"] = result.Rows.Count,
            ["truncated"] = result.Truncated,
        };
        if (result.TruncatedBecause is not null)
        {
            json["truncated_because"] = result.TruncatedBecause;
        }

        if (result.AffectedRows is not null)
        {
            json["affected_rows"] = result.AffectedRows;
        }

        if (result.Masked.Count > 0)
        {
            var masked = new JsonObject();
            foreach (var (kind, count) in result.Masked)
            {
                masked[kind] = count;
            }

            json["masked"] = masked;
        }

        if (result.MaskedColumns.Count > 0)
        {
            var columns = new JsonObject();
            foreach (var (column, kinds) in result.MaskedColumns)
            {
                columns[column] = new JsonArray(kinds.Select(k => (JsonNode?)k).ToArray());
            }

            json["masked_columns"] = columns;
        }

        return json;
    }

    internal static JsonNode? Value(object? value, string type) => value switch
    {
        null => null,
        string s when type is "json" or "jsonb" => ParseJsonOrText(s),
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        decimal m => JsonValue.Create(m),
        double d => JsonValue.Create(d),
        IEnumerable<object?> list => new JsonArray(list.Select(v => Value(v, "")).ToArray()),
        _ => JsonValue.Create(value.ToString()),
    };

    private static JsonNode? ParseJsonOrText(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return JsonValue.Create(text);
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
        json["your_requests"] = new JsonArray(
            status.Access.Select(r => (JsonNode)new JsonObject
            {
                ["id"] = r.Id,
                ["kind"] = "access",
                ["status"] = r.Status.ToString().ToLowerInvariant(),
                ["what"] = $"{r.AccessText} {r.Scope} on {r.Connection} for {Durations.Format(r.Duration)}",
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
        ["expires_if_undecided_at"] = (request.CreatedAt + AccessRequest.PendingLifetime).ToString("O"),
        ["next_step"] = "An approver must accept this request (gatehouse approvals approve " + request.Id + "). Retry your query after that.",
    };
}
