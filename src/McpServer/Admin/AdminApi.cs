using System.Text.Json;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Cli;
using Gatehouse.McpServer.Hosting;
using Microsoft.AspNetCore.Http.Features;

namespace Gatehouse.McpServer.Admin;

/// <summary>
/// The admin HTTP API under /admin/api, which the web console uses too: requests and grants here, agents, calls and sessions in
/// <c>AdminApi.Audit.cs</c>. It has its own authentication (<see cref="AdminGate"/>); no agent token opens it.
/// </summary>
public static partial class AdminApi
{
    public const string Prefix = "/admin/api";
    private const string Channel = "admin-api";

    public static void Map(WebApplication app, GatewayPolicy policy)
    {
        if (policy.Admin is null)
        {
            return;
        }

        var api = app.MapGroup(Prefix);
        api.MapGet("/requests", async (HttpContext context, AdminGate gate, SqlStateStore state, bool? all) =>
            await gate.RunAsync(context, async _ =>
            {
                var now = DateTimeOffset.UtcNow;
                var access = await state.ListAsync(all == true ? null : AccessRequestStatus.Pending, now, context.RequestAborted);
                var statements = await state.ListStatementsAsync(all == true, now, context.RequestAborted);
                return Json(new { access = access.Select(RequestViews.Access), statements = statements.Select(RequestViews.Statement) });
            }));
        api.MapGet("/requests/{id}", async (HttpContext context, AdminGate gate, SqlStateStore state, string id) =>
            await gate.RunAsync(context, async _ =>
            {
                var now = DateTimeOffset.UtcNow;
                object? shown = id.StartsWith("apr_", StringComparison.Ordinal)
                    ? await state.GetStatementAsync(id, now, context.RequestAborted) is { } s ? RequestViews.Statement(s) : null
                    : await state.GetAsync(id, now, context.RequestAborted) is { } r ? RequestViews.Access(r) : null;
                return shown is null ? Problem(StatusCodes.Status404NotFound, $"no request with id '{id}'") : Json(shown);
            }));
        api.MapPost("/requests/{id}/approve", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, admin => DecideAsync(context, gate, desk, admin, id, approve: true)));
        api.MapPost("/requests/{id}/deny", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, admin => DecideAsync(context, gate, desk, admin, id, approve: false)));
        api.MapPost("/requests/{id}/cancel", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, async admin => Outcome(await desk.CancelAsync(id, admin.Agent, admin, ChannelOf(context), context.RequestAborted))));
        api.MapGet("/grants", async (HttpContext context, AdminGate gate, SqlStateStore state) =>
            await gate.RunAsync(context, async _ =>
                Json((await state.ListAsync(AccessRequestStatus.Approved, DateTimeOffset.UtcNow, context.RequestAborted)).Select(RequestViews.Access))));
        api.MapPost("/grants/{id}/revoke", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, async admin => Outcome(await desk.RevokeAsync(id, admin.Agent, ChannelOf(context), context.RequestAborted))));
        MapAudit(api);
    }

    // Console actions are recorded as such, so the log tells a click in the console from a script's API call.
    private static string ChannelOf(HttpContext context) =>
        context.Request.Headers.Authorization.Count == 0 ? "admin-console" : Channel;

    private static IResult Json(object value) => Results.Json(value, Output.JsonOptions);

    private static IResult Problem(int status, string message) => Results.Json(new { error = message }, Output.JsonOptions, statusCode: status);

    // An action refused for what it asked, on record like the desk's own refusals.
    private static async Task<IResult> RefusedAsync(AdminGate gate, HttpContext context, AgentIdentity admin, string rule, string message)
    {
        await gate.RecordRefusedAsync(context, admin.Agent, rule, $"refused: {message}");
        return Problem(StatusCodes.Status400BadRequest, message);
    }

    private static IResult Outcome(DeskOutcome outcome) =>
        outcome.Done ? Json(new { result = outcome.Message })
        : Problem(outcome.NotFound ? StatusCodes.Status404NotFound : outcome.Forbidden ? StatusCodes.Status403Forbidden : StatusCodes.Status409Conflict, outcome.Message);

    private static async Task<IResult> DecideAsync(HttpContext context, AdminGate gate, ApprovalDesk desk, AgentIdentity admin, string id, bool approve)
    {
        var (reason, refused) = await ReasonAsync(context);
        if (refused is not null)
        {
            await gate.RecordRefusedAsync(context, admin.Agent, "approval.refused", $"refused before deciding {id}: its body could not be read as {{\"reason\": \"...\"}}");
            return refused;
        }

        return Outcome(await desk.DecideAsync(id, admin.Agent, admin, approve, reason, ChannelOf(context), context.RequestAborted));
    }

    private const int MaxReason = 2000;

    // Bytes that are not UTF-8 are refused, not replaced: a reason recorded mangled is not the one the admin gave.
    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: true, throwOnInvalidBytes: true);

    // An optional JSON body {"reason": "..."}. Any other body is refused and nothing is decided: a decision cannot be taken
    // back, and one recorded without the reason its admin sent (a form post, a typo in the JSON) would read as one given none.
    private static async Task<(string? Reason, IResult? Refused)> ReasonAsync(HttpContext context)
    {
        var request = context.Request;
        if (context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false })
        {
            return (null, null);
        }

        // Read whole (Kestrel bounds it), so an empty body, sent chunked or over HTTP/2 without a length, is no reason.
        // No byte-order-mark detection: a BOM would switch the reader to a lenient decoder (or to UTF-16); a UTF-8 BOM is
        // still skipped, by this encoding's own preamble.
        using var body = new StreamReader(request.Body, StrictUtf8, detectEncodingFromByteOrderMarks: false);
        string text;
        try
        {
            text = await body.ReadToEndAsync(context.RequestAborted);
        }
        catch (System.Text.DecoderFallbackException)
        {
            return (null, Problem(StatusCodes.Status400BadRequest, "the body is not UTF-8; send the reason as UTF-8 JSON; nothing was decided"));
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            return (null, null);
        }

        if (!request.HasJsonContentType())
        {
            return (null, Problem(StatusCodes.Status415UnsupportedMediaType, "send the reason as JSON, {\"reason\": \"...\"}, with Content-Type: application/json; nothing was decided"));
        }

        try
        {
            using var json = JsonDocument.Parse(text);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (null, Problem(StatusCodes.Status400BadRequest, "the body must be a JSON object, {\"reason\": \"...\"}; nothing was decided"));
            }

            if (!root.TryGetProperty("reason", out var reason) || reason.ValueKind == JsonValueKind.Null)
            {
                return (null, null);
            }

            if (reason.ValueKind != JsonValueKind.String)
            {
                return (null, Problem(StatusCodes.Status400BadRequest, "reason must be a string; nothing was decided"));
            }

            var given = JsonText.Read(reason);
            return given is null ? (null, Problem(StatusCodes.Status400BadRequest, "the reason holds an escaped lone surrogate (\\ud800 …), which is no text; nothing was decided"))
                : given.Contains('\0', StringComparison.Ordinal) ? (null, Problem(StatusCodes.Status400BadRequest, "the reason holds a NUL character, which the state store cannot keep; nothing was decided"))
                : given.Length > MaxReason ? (null, Problem(StatusCodes.Status400BadRequest, $"the reason is {given.Length} characters long; the limit is {MaxReason}; nothing was decided"))
                : (given, null);
        }
        catch (JsonException)
        {
            return (null, Problem(StatusCodes.Status400BadRequest, "the body is not valid JSON; nothing was decided"));
        }
    }
}
