using System.Net;
using System.Reflection;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Cli;
using Gatehouse.McpServer.Hosting;
using Microsoft.AspNetCore.Http.Features;

namespace Gatehouse.McpServer.Admin;

/// <summary>
/// The web console at /admin: a sign-in page, the console page and its assets, all embedded in the gateway (no CDN, no
/// build step). Signing in exchanges an admin token for a session cookie; the page then uses the admin API.
/// </summary>
public static class AdminConsole
{
    public const string Path = "/admin";

    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.Ordinal)
    {
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
    };

    public static void Map(WebApplication app, GatewayPolicy policy)
    {
        if (policy.Admin is null)
        {
            return;
        }

        app.MapGet(Path, (HttpContext context, ConsoleSessions sessions) =>
            sessions.Find(context.Request.Cookies[ConsoleSessions.Cookie]) is null ? Login(context, null) : Page(context, "index.html"));
        app.MapGet(Path + "/assets/{name}", (HttpContext context, string name) =>
            ContentTypes.TryGetValue(System.IO.Path.GetExtension(name), out var type) && Asset(name) is { } text
                ? Secured(context, Results.Text(text, type))
                : Results.NotFound());
        app.MapPost(Path + "/login", SignInAsync).DisableAntiforgery();
        app.MapPost(Path + "/logout", SignOutAsync).DisableAntiforgery();
        app.MapGet(Path + "/session", (HttpContext context, ConsoleSessions sessions) =>
            sessions.Find(context.Request.Cookies[ConsoleSessions.Cookie]) is { } session
                ? Results.Json(new { Admin = session.Admin.Agent, session.ExpiresAt, session.Csrf }, Output.JsonOptions)
                : Results.Json(new { error = "not signed in" }, Output.JsonOptions, statusCode: StatusCodes.Status401Unauthorized));
    }

    // A sign-in form holds a token (at most 16 KB) and a sign-out form a CSRF field: nothing larger is read from anyone, signed
    // in or not (ASP.NET would otherwise read 30 MB, and keep a form's values in memory while a slow client dawdles).
    private const long MaxFormBytes = 32 * 1024;

    private static bool SmallForm(HttpContext context)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = MaxFormBytes;
        }

        return context.Request.ContentLength is null or <= MaxFormBytes
            && context.Request.ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) == true;
    }

    private static async Task<IResult> SignInAsync(HttpContext context, AdminGate gate, ConsoleSessions sessions, IAuditStore audit, TimeProvider time, RefusalRecorder limit)
    {
        if (!AdminGate.SameOrigin(context) || !context.Request.HasFormContentType)
        {
            return Login(context, "Sign in from the console's own page.", StatusCodes.Status403Forbidden);
        }

        if (!SmallForm(context))
        {
            return Login(context, "A sign-in is a pasted token and nothing else; this form was too large or not a plain form.", StatusCodes.Status413PayloadTooLarge);
        }

        // Every attempt is a durable record, and no token vouches for who sends it: bounded like tokenless requests to /mcp.
        if (!limit.TryAdmitSignIn(context))
        {
            return Login(context, "Too many sign-ins from here just now; wait a second and try again.", StatusCodes.Status429TooManyRequests);
        }

        if (await ReadSmallFormAsync(context) is not { } form)
        {
            return Login(context, "A sign-in is a pasted token and nothing else; this form held too many or too long fields.", StatusCodes.Status413PayloadTooLarge);
        }

        var token = form["token"].ToString().Trim();
        AgentIdentity? admin;
        string problem;
        try
        {
            (admin, problem, _) = token.Length is 0 or > 16 * 1024
                ? (null, "paste an admin token (it was empty or too long)", (string?)null)
                : await gate.VerifyTokenAsync(token, context.RequestAborted);
            await audit.RecordAsync(
                time.GetUtcNow(), "console sign-in", "admin-console", admin?.Agent, null, admin is not null, admin is null ? "admin.sign_in_refused" : "admin.signed_in",
                admin is null ? $"refused: {problem}" : "signed in");
        }
        catch (Exception e) when (gate.StoreDown(context, e))
        {
            // Whether the admin is disabled, and the record of the attempt, are in the state store: no sign-in without them.
            context.Response.Headers.RetryAfter = "5";
            return Login(context, "The gateway's state store did not answer, so nobody can be signed in just now; try again in a few seconds.", StatusCodes.Status503ServiceUnavailable);
        }

        if (admin is null)
        {
            return Login(context, $"That token does not open the console: {problem}.", StatusCodes.Status401Unauthorized);
        }

        // A sign-in replaces the session this browser held: the old id must not outlive it.
        sessions.Close(context.Request.Cookies[ConsoleSessions.Cookie]);
        var (id, session) = sessions.Open(admin, token);
        context.Response.Cookies.Append(ConsoleSessions.Cookie, id, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = context.Request.IsHttps,
            Path = Path,
            Expires = session.ExpiresAt,
        });
        return Results.Redirect(Path + "#/calls");
    }

    // ASP.NET's own form limits (1,024 fields, 2 KB keys) are far above what these forms hold, and throw when passed.
    private static readonly FormOptions SmallFormLimits = new() { ValueCountLimit = 8, KeyLengthLimit = 64, ValueLengthLimit = (int)MaxFormBytes };

    // The form, or null when it holds more fields, or longer ones, than a sign-in or sign-out form does.
    private static async Task<IFormCollection?> ReadSmallFormAsync(HttpContext context)
    {
        try
        {
            return await context.Request.ReadFormAsync(SmallFormLimits, context.RequestAborted);
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    private static async Task<IResult> SignOutAsync(HttpContext context, ConsoleSessions sessions)
    {
        // The form is read only for a live session, from the console's own origin. One whose sign-out is not confirmed
        // stays open, and says so: clearing the browser's cookie alone would look like a sign-out and leave the session
        // usable by whoever else holds its id.
        var id = context.Request.Cookies[ConsoleSessions.Cookie];
        if (sessions.Find(id) is { } session)
        {
            if (!AdminGate.SameOrigin(context) || !SmallForm(context) || !context.Request.HasFormContentType
                || await ReadSmallFormAsync(context) is not { } form || !ConsoleSessions.CsrfMatches(session, form["csrf"].ToString()))
            {
                return Login(context, "Sign-out not confirmed, and the session is still open: reload the console and sign out with its button (a page left open from an earlier sign-in cannot).", StatusCodes.Status403Forbidden);
            }

            sessions.Close(id);
        }

        context.Response.Cookies.Delete(ConsoleSessions.Cookie, new CookieOptions { Path = Path });
        return Results.Redirect(Path);
    }

    private static IResult Login(HttpContext context, string? error, int status = StatusCodes.Status200OK)
    {
        var html = Asset("login.html")!.Replace("{{error}}", WebUtility.HtmlEncode(error ?? ""), StringComparison.Ordinal);
        return Secured(context, Results.Text(html, "text/html; charset=utf-8", statusCode: status));
    }

    private static IResult Page(HttpContext context, string name) => Secured(context, Results.Text(Asset(name)!, "text/html; charset=utf-8"));

    // Only the gateway's own scripts and styles run, and no other site may frame the console.
    private static IResult Secured(HttpContext context, IResult result)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        headers.XContentTypeOptions = "nosniff";
        // same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on form posts, and the origin checks need it.
        headers["Referrer-Policy"] = "same-origin";
        headers.CacheControl = "no-store";
        return result;
    }

    private static string? Asset(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("console/" + name);
        if (stream is null)
        {
            return null;
        }

        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
