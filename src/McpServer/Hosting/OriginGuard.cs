using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Hosting;

/// <summary>DNS-rebinding protection: a browser request whose Origin is not allowed is refused before anything else runs.</summary>
public static class OriginGuard
{
    public static Func<HttpContext, RequestDelegate, Task> Create(HttpSettings settings) => async (context, next) =>
    {
        var origin = context.Request.Headers.Origin.ToString();
        if (origin.Length > 0 && !IsAllowed(origin, settings))
        {
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await context.Response.WriteAsync($"Origin '{origin}' is not allowed; add it to gateway.http.allowed_origins to permit it.");
            return;
        }

        await next(context);
    };

    public static bool IsAllowed(string origin, HttpSettings settings)
    {
        if (settings.AllowedOrigins.Count > 0)
        {
            return settings.AllowedOrigins.Contains(origin, StringComparer.OrdinalIgnoreCase);
        }

        return Uri.TryCreate(origin, UriKind.Absolute, out var uri) && (uri.IsLoopback || uri.Host == "localhost");
    }
}
