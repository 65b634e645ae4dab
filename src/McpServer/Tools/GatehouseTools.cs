using System.ComponentModel;
using System.Text.Json;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.McpServer.Hosting;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using McpServerSession = ModelContextProtocol.Server.McpServer;

namespace Gatehouse.McpServer.Tools;

/// <summary>The three MCP tools. Each maps arguments to a request, runs the pipeline, and maps the outcome; no policy lives here.</summary>
[McpServerToolType]
public sealed class GatehouseTools(GatewayPipeline pipeline, ICallerToken caller, SessionInfo session)
{
    public const string Instructions =
        "Gatehouse gives governed access to PostgreSQL databases under your own identity. "
        + "Start with describe_schema to see the tables you may use, then run one SQL statement per query call. "
        + "Refusals name the rule and what to do instead; if you need more access, use request_access with a reason.";

    [McpServerTool(Name = "query", Title = "Run one SQL statement", ReadOnly = false, Destructive = true, Idempotent = false, OpenWorld = false)]
    [Description("Runs exactly one PostgreSQL statement on a named connection under your grants and returns columns and rows. "
        + "Reads run in a read-only transaction with a timeout and a row cap; writes need a write grant. "
        + "Use $1, $2... placeholders with 'params' for values instead of pasting them into the SQL. "
        + "Multiple statements, DDL, transaction control and session commands are refused. "
        + "A statement a guardrail sends to a human waits for approval (with progress notifications); if none comes in time you get "
        + "a pending_approval request id: call query again with the same SQL and params to run it once approved.")]
    public async Task<CallToolResult> Query(
        McpServerSession server,
        [Description("Connection name, e.g. 'shop'. describe_schema and refusals list the available ones.")] string connection,
        [Description("One SQL statement, e.g. SELECT id, status FROM orders WHERE customer_id = $1 ORDER BY created_at DESC")] string sql,
        [Description("Values for $1, $2... in order (strings, numbers, booleans or null).")] JsonElement[]? @params = null,
        [Description("Return at most this many rows (default and maximum set by the gateway, usually 1000).")] int? max_rows = null,
        IProgress<ProgressNotificationValue>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var request = new QueryRequest(connection, sql, (@params ?? []).Select(ParameterText).ToList(), max_rows);
        var call = Call("query", server) with
        {
            Progress = progress is null ? null : new WaitReporter(progress),
            AskOperator = server.ClientCapabilities?.Elicitation is null ? null : (message, ct) => AskOperatorAsync(server, message, ct),
        };
        var outcome = await pipeline.QueryAsync(call, request, cancellationToken);
        return ResultMapper.ToResult(outcome);
    }

    [McpServerTool(Name = "describe_schema", Title = "Describe the tables you may use", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = false)]
    [Description("Lists the tables and views on a connection that your grants let you read: columns with types and nullability, "
        + "primary and foreign keys, and comments. Filter by schema and/or table name.")]
    public async Task<CallToolResult> DescribeSchema(
        McpServerSession server,
        [Description("Connection name, e.g. 'shop'.")] string connection,
        [Description("Only this schema, e.g. 'public'.")] string? schema = null,
        [Description("Only this table (name without schema).")] string? table = null,
        CancellationToken cancellationToken = default)
    {
        var outcome = await pipeline.DescribeSchemaAsync(Call("describe_schema", server), new DescribeSchemaRequest(connection, schema, table), cancellationToken);
        return ResultMapper.ToResult(outcome);
    }

    [McpServerTool(Name = "request_access", Title = "Ask a human for more access", ReadOnly = false, Destructive = false, Idempotent = false, OpenWorld = false)]
    [Description("Asks an approver for time-boxed access to specific tables when a query was refused for lack of a grant. "
        + "Returns a pending request id and how many approvers must accept it; once they have, the access applies to your calls until it expires. "
        + "Every answer lists where your recent requests stand (access requests and statements waiting for approval); "
        + "with status_only=true it only does that.")]
    public async Task<CallToolResult> RequestAccess(
        McpServerSession server,
        [Description("Connection name, e.g. 'shop'.")] string? connection = null,
        [Description("Tables as schema.table, e.g. [\"public.payments\"].")] string[]? tables = null,
        [Description("Whole schemas, e.g. [\"reporting\"] (instead of or besides tables).")] string[]? schemas = null,
        [Description("'read' or 'write'.")] string? access = null,
        [Description("Why you need it, in a sentence an approver can judge.")] string? reason = null,
        [Description("How long the access should last, e.g. '30m' or '2h' (at most the gateway's approvals.max_grant, 24h by default).")] string duration = "1h",
        [Description("Only list your requests and their status; request nothing.")] bool status_only = false,
        CancellationToken cancellationToken = default)
    {
        var input = new AccessRequestInput(connection, tables ?? [], access, reason, duration) { StatusOnly = status_only, Schemas = schemas ?? [] };
        var outcome = await pipeline.RequestAccessAsync(Call("request_access", server), input, cancellationToken);
        return ResultMapper.ToResult(outcome);
    }

    // MCP elicitation: the client shows the form to its human; declining, cancelling or an unreadable answer is no answer.
    // It needs a session that can send the client requests: stdio, not stateless Streamable HTTP.
    private static async Task<OperatorAnswer?> AskOperatorAsync(McpServerSession server, string message, CancellationToken cancellationToken)
    {
        var request = new ElicitRequestParams
        {
            Message = message,
            RequestedSchema = new ElicitRequestParams.RequestSchema
            {
                Properties = new Dictionary<string, ElicitRequestParams.PrimitiveSchemaDefinition>
                {
                    ["approve"] = new ElicitRequestParams.BooleanSchema { Description = "Approve running this statement once" },
                    ["reason"] = new ElicitRequestParams.StringSchema { Description = "Why (recorded with the decision)" },
                },
                Required = ["approve"],
            },
        };
        ElicitResult result;
        try
        {
            result = await server.ElicitAsync(request, cancellationToken);
        }
        catch (InvalidOperationException)
        {
            // Stateless Streamable HTTP cannot send the client a request; the other approvers decide.
            return null;
        }
        catch (McpException)
        {
            // The client answered the form with an error (its user closed it, say): no answer, as a decline is.
            return null;
        }
        if (!result.IsAccepted || result.Content is not { } content || !content.TryGetValue("approve", out var approve) || approve.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            return null;
        }

        var reason = content.TryGetValue("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
        return new OperatorAnswer(approve.GetBoolean(), reason is { Length: > 2000 } ? reason[..2000] : reason);
    }

    /// <summary>Turns the pipeline's waiting reports into MCP progress notifications.</summary>
    private sealed class WaitReporter(IProgress<ProgressNotificationValue> progress) : IProgress<WaitProgress>
    {
        public void Report(WaitProgress value) =>
            progress.Report(new ProgressNotificationValue { Progress = (float)value.Elapsed, Total = (float)value.Total, Message = value.Message });
    }

    /// <summary>Verifies, records and answers a call refused before its tool ran (see <see cref="ToolCallGuard"/>).</summary>
    internal async ValueTask<CallToolResult> RefuseAsync(string tool, McpServerSession server, Decision refusal, CancellationToken cancellationToken) =>
        ResultMapper.ToResult(await pipeline.RefuseCallAsync(Call(tool, server), refusal, cancellationToken));

    private CallContext Call(string tool, McpServerSession server)
    {
        var token = caller.Current();
        return new(tool, token, caller.Transport, server.SessionId ?? SessionOf(token));
    }

    // Stdio: the process is the session. Stateless HTTP has no MCP session, so the calls made with one token form one session;
    // the id is a hash prefix, which says nothing about the token itself.
    private string SessionOf(string? token) =>
        caller.Transport == "stdio" ? session.StdioSessionId
        : token is null ? "http-unidentified"
        : "http-" + TokenValidator.TokenHash(token)[..16];

    private static string? ParameterText(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.String => value.GetString(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        _ => value.GetRawText(),
    };
}
