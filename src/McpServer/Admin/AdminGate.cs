using Gatehouse.Enforcement;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Cli;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Admin;

/// <summary>
/// Verifies the admin on every admin API request, by one of two means: a Bearer token from a trusted issuer minted for the
/// admin audience (no agent token is) naming an admin user or group; or a web console session, whose actions must also carry
/// its CSRF token and come from the gateway's own origin.
/// </summary>
internal sealed class AdminGate
{
    public const string CsrfHeader = "X-Gatehouse-CSRF";

    private readonly AdminSettings _settings;
    private readonly TokenValidator _validator;
    private readonly ConsoleSessions _sessions;
    private readonly Identifier _identifier;
    private readonly ILogger<AdminGate> _logger;
    private readonly IAuditStore _audit;
    private readonly TimeProvider _time;
    private readonly RefusalRecorder _limit;

    public AdminGate(GatewayPolicy policy, TimeProvider time, ConsoleSessions sessions, Identifier identifier, IAuditStore audit, RefusalRecorder limit, ILogger<AdminGate> logger)
    {
        _limit = limit;
        _audit = audit;
        _time = time;
        _identifier = identifier;
        _settings = policy.Admin ?? throw new InvalidOperationException("The admin API is not configured.");
        // admin.issuers says who may sign admins in; the issuers' agents and groups lists are about agents' tokens.
        _validator = new TokenValidator(policy.Issuers.Where(i => _settings.Issuers.Contains(i.Issuer)).Select(i => i with { Audiences = [_settings.Audience], Agents = null, Groups = null }).ToList(), time);
        _sessions = sessions;
        _logger = logger;
    }

    /// <summary>
    /// Verifies an admin token: admin audience, trusted issuer, not disabled, admitted user or group. Returns the admin, or
    /// why not and, when the token itself was valid but names someone who is not an admin (forbidden rather than
    /// unauthenticated), who that is.
    /// </summary>
    public async Task<(AgentIdentity? Admin, string Problem, string? NotAnAdmin)> VerifyTokenAsync(string token, CancellationToken cancellationToken)
    {
        var result = await _validator.ValidateAsync(token, cancellationToken);
        if (result.Identity is not { } admin)
        {
            return (null, $"{result.Rule}: {result.Reason}", null);
        }

        // Switches first: a disabled token is refused as such whoever it names.
        if (await Revoked(admin, cancellationToken) is { } revoked)
        {
            return (null, revoked, null);
        }

        return _settings.Admits(admin.Agent, admin.Groups)
            ? (admin, "", null)
            : (null, $"'{admin.Agent}' is not an admin: admin.users and admin.groups in the policy name who is", admin.Agent);
    }

    // A leaked admin token is revoked as an agent's is (gatehouse agents disable --jti, --subject or the name), on its next use.
    private async Task<string?> Revoked(AgentIdentity admin, CancellationToken cancellationToken) =>
        await _identifier.CheckSwitchesAsync(admin, cancellationToken) is { } disabled ? $"{disabled.Rule}: {disabled.Reason}" : null;

    public async Task<IResult> RunAsync(HttpContext context, Func<AgentIdentity, Task<IResult>> body)
    {
        // No name or filter holds a NUL; PostgreSQL refuses one in text, which would read as the store failing (503). Kestrel
        // refuses one in the path.
        if (context.Request.Query.Any(q => q.Key.Contains('\0', StringComparison.Ordinal) || q.Value.Any(v => v?.Contains('\0', StringComparison.Ordinal) == true)))
        {
            return Error("a query parameter holds a NUL character, which no name or filter does; nothing was read or done", StatusCodes.Status400BadRequest);
        }

        try
        {
            return await AdmitAsync(context, body);
        }
        catch (Exception e) when (StoreDown(context, e))
        {
            // The requests, grants, switches and audit log all live in the state store: say so, rather than a bare 500.
            context.Response.Headers.RetryAfter = "5";
            return Error("the gateway's state store did not answer, so this could not be read or done; try again, and check the store if it persists", StatusCodes.Status503ServiceUnavailable);
        }
    }

    private async Task<IResult> AdmitAsync(HttpContext context, Func<AgentIdentity, Task<IResult>> body)
    {
        var token = HttpCallerToken.BearerToken(context.Request.Headers.Authorization.ToString());
        if (token is null)
        {
            return await RunConsoleAsync(context, body);
        }

        var (admin, problem, notAnAdmin) = await VerifyTokenAsync(token, context.RequestAborted);
        if (admin is null)
        {
            if (notAnAdmin is null)
            {
                context.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
            }
            else if (_limit.TryAdmit(context))
            {
                // A valid token of someone who is not an admin, trying an admin action: worth knowing about, within the rates
                // of requests no admin vouches for (anyone an admin issuer signs for may send these).
                await RecordRefusedAsync(context, notAnAdmin, "admin.not_an_admin", problem);
            }

            return Error(problem, notAnAdmin is not null ? StatusCodes.Status403Forbidden : StatusCodes.Status401Unauthorized);
        }

        return await body(admin);
    }

    /// <summary>
    /// Whether <paramref name="e"/> is the state store not answering (logged when it is), for an admin request to answer
    /// <c>503</c>. The admin's own switches are read first, and a store that does not answer them says so as
    /// <see cref="StateUnavailableException"/>. A bad request body and a client that went away are I/O failures too, but not
    /// the store's: Kestrel answers those.
    /// </summary>
    public bool StoreDown(HttpContext context, Exception e)
    {
        if (!(e is StateUnavailableException || (StateUnavailableException.IsStoreFailure(e) && e is not BadHttpRequestException))
            || context.RequestAborted.IsCancellationRequested)
        {
            return false;
        }

        HostLog.AdminStateUnavailable(_logger, context.Request.Method, context.Request.Path, e is StateUnavailableException { InnerException: { } inner } ? inner.Message : e.Message);
        return true;
    }

    /// <summary>
    /// Records an admin action refused before it was tried (reads are not recorded), under the admin when known: every
    /// action, refused ones included, is on record with its channel. The desk records its own refusals.
    /// </summary>
    public async Task RecordRefusedAsync(HttpContext context, string? who, string rule, string reason)
    {
        if (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }

        var channel = context.Request.Headers.Authorization.Count == 0 ? "admin-console" : "admin-api";
        await _audit.RecordAsync(_time.GetUtcNow(), $"admin {context.Request.Method} {Output.Clip(context.Request.Path.Value, 200)}", channel, who, null, done: false, rule, reason);
    }

    private async Task<IResult> RunConsoleAsync(HttpContext context, Func<AgentIdentity, Task<IResult>> body)
    {
        var id = context.Request.Cookies[ConsoleSessions.Cookie];
        var session = _sessions.Find(id);
        if (session is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Error("the admin API needs an admin token (Authorization: Bearer …) minted for the admin audience, or a web console sign-in at /admin", StatusCodes.Status401Unauthorized);
        }

        // Verified again as a Bearer token would be (cached for minutes at most): a revocation, or a signing key withdrawn
        // or rotated out, ends the session, so the console shows its sign-in form again (a session left open whose calls
        // were refused would have the page reload itself for good).
        var (admin, problem, _) = await VerifyTokenAsync(session.SignInToken, context.RequestAborted);
        if (admin is null)
        {
            _sessions.Close(id);
            return Error($"this console session was signed in with a token that no longer opens the console ({problem}); sign in again with another", StatusCodes.Status401Unauthorized);
        }

        // A cookie rides along on any request the browser makes, so actions also need what only the console's own page has.
        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method)
            && (!ConsoleSessions.CsrfMatches(session, context.Request.Headers[CsrfHeader]) || !SameOrigin(context)))
        {
            // A cross-site attempt rides on a signed-in admin's cookie: recorded under that admin, as evidence of it.
            var refusal = $"this action needs the console's {CsrfHeader} header and must come from the console's own page";
            await RecordRefusedAsync(context, admin.Agent, "admin.csrf_refused", $"refused: {refusal} (origin '{context.Request.Headers.Origin}')");
            return Error(refusal, StatusCodes.Status403Forbidden);
        }

        return await body(session.Admin);
    }

    /// <summary>True unless the browser says the request came from another origin than the gateway's own.</summary>
    public static bool SameOrigin(HttpContext context)
    {
        var origin = context.Request.Headers.Origin.ToString();
        return origin.Length == 0 || string.Equals(origin, $"{context.Request.Scheme}://{context.Request.Host}", StringComparison.OrdinalIgnoreCase);
    }

    private static IResult Error(string message, int status) => Results.Json(new { error = message }, Output.JsonOptions, statusCode: status);
}
