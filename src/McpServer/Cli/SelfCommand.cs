namespace Gatehouse.McpServer.Cli;

/// <summary>How to invoke this same gatehouse binary again, whether it runs as an app host or through <c>dotnet gatehouse.dll</c>.</summary>
public static class SelfCommand
{
    public static (string Command, string[] LeadingArguments) Resolve()
    {
        var process = Environment.ProcessPath ?? "gatehouse";
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? (process, [typeof(SelfCommand).Assembly.Location])
            : (process, []);
    }

    /// <summary>The command as a shell prefix, e.g. <c>/usr/bin/dotnet /app/gatehouse.dll</c>.</summary>
    public static string ShellPrefix()
    {
        var (command, leading) = Resolve();
        return string.Join(' ', [command, .. leading]);
    }
}
