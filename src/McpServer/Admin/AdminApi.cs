using System.Text.Json;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Cli;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Admin;

/// <summary>
/// The admin HTTP API under /admin/api: list and decide requests, list and revoke grants. It has its own authentication:
/// a Bearer token from a trusted issuer minted for the admin audience (no agent token is), naming an admin user or group.
/// </summary>
public static class AdminApi
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
        api.MapGet("/requests", async (HttpContext context, AdminGate gate, SqliteStateStore state, bool? all) =>
            await gate.RunAsync(context, async _ =>
            {
                var now = DateTimeOffset.UtcNow;
                var access = await state.ListAsync(all == true ? null : AccessRequestStatus.Pending, now, context.RequestAborted);
                var statements = await state.ListStatementsAsync(all == true, now, context.RequestAborted);
                return Json(new { access = access.Select(RequestViews.Access), statements = statements.Select(RequestViews.Statement) });
            }));
        api.MapGet("/requests/{id}", async (HttpContext context, AdminGate gate, SqliteStateStore state, string id) =>
            await gate.RunAsync(context, async _ =>
            {
                var now = DateTimeOffset.UtcNow;
                object? shown = id.StartsWith("apr_", StringComparison.Ordinal)
                    ? await state.GetStatementAsync(id, now, context.RequestAborted) is { } s ? RequestViews.Statement(s) : null
                    : await state.GetAsync(id, now, context.RequestAborted) is { } r ? RequestViews.Access(r) : null;
                return shown is null ? Problem(StatusCodes.Status404NotFound, $"no request with id '{id}'") : Json(shown);
            }));
        api.MapPost("/requests/{id}/approve", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, async admin => Outcome(await desk.DecideAsync(id, admin.Agent, admin, approve: true, await ReasonAsync(context), Channel, context.RequestAborted))));
        api.MapPost("/requests/{id}/deny", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, async admin => Outcome(await desk.DecideAsync(id, admin.Agent, admin, approve: false, await ReasonAsync(context), Channel, context.RequestAborted))));
        api.MapPost("/requests/{id}/cancel", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, async admin => Outcome(await desk.CancelAsync(id, admin.Agent, Channel, context.RequestAborted))));
        api.MapGet("/grants", async (HttpContext context, AdminGate gate, SqliteStateStore state) =>
            await gate.RunAsync(context, async _ =>
                Json((await state.ListAsync(AccessRequestStatus.Approved, DateTimeOffset.UtcNow, context.RequestAborted)).Select(RequestViews.Access))));
        api.MapPost("/grants/{id}/revoke", (HttpContext context, AdminGate gate, ApprovalDesk desk, string id) =>
            gate.RunAsync(context, async admin => Outcome(await desk.RevokeAsync(id, admin.Agent, Channel, context.RequestAborted))));
    }

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

/// <summary>Verifies an admin token on every admin API request: admin audience, trusted issuer, admitted user or group.</summary>
public sealed class AdminGate
{
    private readonly AdminSettings _settings;
    private readonly TokenValidator _validator;

    public AdminGate(GatewayPolicy policy, TimeProvider time)
    {
        _settings = policy.Admin ?? throw new InvalidOperationException("The admin API is not configured.");
        _validator = new TokenValidator(policy.Issuers.Select(i => i with { Audiences = [_settings.Audience] }).ToList(), time);
    }

    public async Task<IResult> RunAsync(HttpContext context, Func<AgentIdentity, Task<IResult>> body)
    {
        var token = HttpCallerToken.BearerToken(context.Request.Headers.Authorization.ToString());
        if (token is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Results.Json(new { error = "the admin API needs an admin token (Authorization: Bearer …) minted for the admin audience" }, Output.JsonOptions, statusCode: StatusCodes.Status401Unauthorized);
        }

        var result = await _validator.ValidateAsync(token, context.RequestAborted);
        if (result.Identity is not { } admin)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
            return Results.Json(new { error = $"{result.Rule}: {result.Reason}" }, Output.JsonOptions, statusCode: StatusCodes.Status401Unauthorized);
        }

        if (!_settings.Admits(admin.Agent, admin.Groups))
        {
            return Results.Json(new { error = $"'{admin.Agent}' is not an admin: admin.users and admin.groups in the policy name who is" }, Output.JsonOptions, statusCode: StatusCodes.Status403Forbidden);
        }

        return await body(admin);
    }
}
