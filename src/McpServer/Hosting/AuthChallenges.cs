using System.Text.Json;
using Gatehouse.Enforcement;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.Features;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// The MCP authorization spec's answers at the HTTP edge (RFC 6750 §3): a presented token that is refused gets
/// <c>401</c> with <c>error="invalid_token"</c> and why; a valid token calling a tool whose scopes it lacks gets <c>403</c>
/// with <c>error="insufficient_scope"</c> and the scopes needed, before the call reaches the tool (where the pipeline would
/// refuse and record it anyway).
/// </summary>
public static class AuthChallenges
{
    // A body is read in memory up to this, and from a temporary file past it.
    private const int MaxBufferedInMemory = 1024 * 1024;

    /// <summary>Where the HTTP host leaves why a presented token was refused.</summary>
    public const string RefusalItem = "gatehouse.token_refusal";

    /// <summary>Where the HTTP host leaves the identity a presented token was verified as.</summary>
    public const string IdentityItem = "gatehouse.identity";

    internal static Func<HttpContext, RequestDelegate, Task> Create(LivePolicy live, Identifier identifier, RefusalRecorder recorder, ILogger logger) => async (context, next) =>
    {
        var policy = live.Current;
        if (!context.Request.Path.StartsWithSegments(HttpHost.McpPath))
        {
            await next(context);
            return;
        }

        if (HttpCallerToken.HasBearerToken(context.Request.Headers.Authorization.ToString()))
        {
            context.Response.OnStarting(() =>
            {
                if (context.Response.StatusCode == StatusCodes.Status401Unauthorized)
                {
                    var why = context.Items[RefusalItem] as string ?? "the token was refused";
                    context.Response.Headers.WWWAuthenticate = Append(context.Response.Headers.WWWAuthenticate.ToString(), "invalid_token", why, null);
                }

                return Task.CompletedTask;
            });
        }

        // The limit this request's body is read under, as set for it from the policy in force.
        var bodyLimit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize ?? HttpHost.BodyLimit(policy);
        var door = context.Items[IdentityItem] is AgentIdentity identity ? await SwitchesAsync(context, identity, bodyLimit, identifier, recorder, logger) : Door.Open;
        if (door == Door.Answered)
        {
            return;
        }

        // A disabled token's tool call goes to the tool, which refuses it as disabled whatever its scopes.
        if (door == Door.Open && policy.Gateway.ToolScopes.Count > 0 && context.User.Identity?.IsAuthenticated == true && HttpMethods.IsPost(context.Request.Method)
            && await CalledToolAsync(context, bodyLimit) is { } tool)
        {
            var granted = context.User.FindAll("scope").Select(c => c.Value).ToList();
            if (policy.Gateway.MissingScopes(tool, granted) is { Count: > 0 } missing)
            {
                var needed = string.Join(' ', policy.Gateway.ToolScopes[tool]);
                var reason = $"the {tool} tool needs the scope(s) {string.Join(", ", missing)}, which this token lacks";
                // Refused before any tool ran, so recorded here.
                await context.RequestServices.GetRequiredService<IAuditStore>().RecordAsync(
                    DateTimeOffset.UtcNow, tool, "http", context.User.FindFirst("agent")?.Value, null, done: false, "identity.insufficient_scope", reason);
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                context.Response.Headers.WWWAuthenticate = Append(
                    $"Bearer resource_metadata=\"{context.Request.Scheme}://{context.Request.Host}/.well-known/oauth-protected-resource{HttpHost.McpPath}\"",
                    "insufficient_scope",
                    reason,
                    needed);
                await context.Response.WriteAsJsonAsync(new { error = "insufficient_scope", scope = needed });
                return;
            }
        }

        await next(context);
    };

    private enum Door
    {
        /// <summary>The identity is not disabled: the request goes on.</summary>
        Open,

        /// <summary>A disabled identity's tool call: it goes on to the tool, which refuses and records it.</summary>
        ToTheTool,

        /// <summary>Answered here (401, 429 or 503).</summary>
        Answered,
    }

    /// <summary>
    /// What the agent switches make of a request whose token is valid. A disabled identity opens nothing (not a session, not
    /// the tool list): its request is answered <c>401</c> with <c>invalid_token</c> and why, and recorded under that identity.
    /// Its tool calls go on to the tool, which refuses them and records each with its statement, so what a revoked token
    /// tried is on record. Either way it is recorded within the rates of the requests without a valid token, and past them
    /// answered <c>429</c> unrecorded: a revoked token is no more trusted to fill the disk than a missing one. When the store
    /// cannot say, the answer is <c>503</c>, not <c>401</c>: the token may be fine, and a client told it is not would ask for
    /// a new one.
    /// </summary>
    private static async Task<Door> SwitchesAsync(HttpContext context, AgentIdentity identity, long bodyLimit, Identifier identifier, RefusalRecorder recorder, ILogger logger)
    {
        IdentityResult? disabled;
        try
        {
            disabled = await identifier.CheckSwitchesAsync(identity, context.RequestAborted);
        }
        catch (StateUnavailableException e)
        {
            // Not recorded: the audit log lives in the store that did not answer.
            HostLog.DoorStateUnavailable(logger, e.What, e.InnerException?.Message ?? e.Message);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = "5";
            await context.Response.WriteAsJsonAsync(new { error = "state.unavailable", error_description = $"{e.Message} Nothing was run; try again." });
            return Door.Answered;
        }

        if (disabled is null)
        {
            return Door.Open;
        }

        if (!recorder.TryAdmit(context))
        {
            context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
            return Door.Answered;
        }

        if (HttpMethods.IsPost(context.Request.Method) && await CalledToolAsync(context, bodyLimit) is not null)
        {
            return Door.ToTheTool;
        }

        await recorder.RecordAsync(context);
        context.Items[RefusalItem] = disabled.Reason;
        await context.ChallengeAsync();
        return Door.Answered;
    }

    private static string Append(string challenge, string error, string description, string? scope)
    {
        var text = string.IsNullOrEmpty(challenge) ? "Bearer" : challenge;
        var separator = text.TrimEnd() == "Bearer" ? " " : ", ";
        // A header carries printable ASCII only, and the reason may quote a token's unverified claims (its issuer, its agent):
        // written as they stood, Kestrel threw while sending the 401, which went out as a bare 500 without its challenge.
        var quoted = string.Concat(description.Select(c => c switch
        {
            '"' => '\'',
            '\\' => '/',
            >= ' ' and <= '~' => c,
            _ => '?',
        }));
        return $"{text}{separator}error=\"{error}\", error_description=\"{quoted}\"" + (scope is null ? "" : $", scope=\"{scope}\"");
    }

    // The name of the tool a JSON-RPC tools/call request calls; the body is kept for the endpoint to read again. Any body the
    // gateway takes is read, up to the limit in force: a large statement's call is seen for what it is.
    private static async Task<string?> CalledToolAsync(HttpContext context, long bodyLimit)
    {
        if (context.Request.ContentLength > bodyLimit)
        {
            return null;
        }

        context.Request.EnableBuffering(MaxBufferedInMemory, bodyLimit);
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            var root = document.RootElement;
            return root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("method", out var method) && method.ValueKind == JsonValueKind.String && method.ValueEquals("tools/call")
                && root.TryGetProperty("params", out var parameters) && parameters.ValueKind == JsonValueKind.Object
                && parameters.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String
                // A name that is not text .NET can hold (a lone escaped surrogate) is no tool's; the endpoint answers it.
                ? JsonText.Read(name)
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
        finally
        {
            context.Request.Body.Position = 0;
        }
    }
}
