using System.Text.Json;

namespace Gatehouse.McpServer.Hosting;

/// <summary>Reading a JSON string that came from outside.</summary>
internal static class JsonText
{
    /// <summary>
    /// The string <paramref name="value"/> holds, or null when it holds none .NET can make: JSON lets a string escape half a
    /// surrogate pair (<c>"\ud800"</c>), which the parser takes and <see cref="JsonElement.GetString"/> then throws on.
    /// </summary>
    public static string? Read(JsonElement value)
    {
        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}
