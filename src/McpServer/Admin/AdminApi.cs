using System.Text.Json;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Cli;
using Gatehouse.McpServer.Hosting;

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
            gate.RunAsync(context, async admin => Outcome(await desk.DecideAsync(id, admin.Agent, admin, approve: true, await ReasonAsync(context), ChannelOf(context), context.RequestAborted))));
        api.MapPost("/requests/{id}/deny", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, async admin => Outcome(await desk.DecideAsync(id, admin.Agent, admin, approve: false, await ReasonAsync(context), ChannelOf(context), context.RequestAborted))));
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

    private static IResult Outcome(DeskOutcome outcome) =>
        outcome.Done ? Json(new { result = outcome.Message })
        : Problem(outcome.NotFound ? StatusCodes.Status404NotFound : StatusCodes.Status409Conflict, outcome.Message);

    // An optional JSON body {"reason": "..."}; anything else is ignored rather than guessed at.
    private static async Task<string?> ReasonAsync(HttpContext context)
    {
        if (!context.Request.HasJsonContentType() || context.Request.ContentLength == 0)
        {
            return null;
        }

        try
        {
            using var body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            return body.RootElement.ValueKind == JsonValueKind.Object && body.RootElement.TryGetProperty("reason", out var reason) && reason.ValueKind == JsonValueKind.String
                ? reason.GetString()![..Math.Min(reason.GetString()!.Length, 2000)]
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
