using System.Diagnostics.CodeAnalysis;

namespace Gatehouse.McpServer.Hosting;

/// <summary>Where the current call's agent token comes from: the transport, never a tool argument.</summary>
public interface ICallerToken
{
    string Transport { get; }

    /// <summary>The raw token for the call being handled, or null when none was presented.</summary>
    string? Current();
}

/// <summary>Stdio: the token from GATEHOUSE_TOKEN, or a file re-read on every call so a refreshed token is picked up.</summary>
public sealed class StdioCallerToken(string? environmentToken, string? tokenFile) : ICallerToken
{
    public const string EnvironmentVariable = "GATEHOUSE_TOKEN";

    public string Transport => "stdio";

    public string? Current()
    {
        if (tokenFile is null)
        {
            return environmentToken;
        }

        try
        {
            return File.ReadAllText(tokenFile).Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>HTTP: the bearer token of the request carrying this call.</summary>
public sealed class HttpCallerToken(IHttpContextAccessor accessor) : ICallerToken
{
    public string Transport => "http";

    public string? Current() => BearerToken(accessor.HttpContext?.Request.Headers.Authorization.ToString());

    public static string? BearerToken(string? header) =>
        HasBearerToken(header) ? header["Bearer ".Length..].Trim() : null;

    /// <summary>Whether the header presents a bearer token (perhaps an empty one), without copying it out.</summary>
    public static bool HasBearerToken([NotNullWhen(true)] string? header) =>
        header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);
}
