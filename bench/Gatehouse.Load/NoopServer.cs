using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using ModelContextProtocol.Server;

namespace Gatehouse.Load;

/// <summary>The transport floor: an MCP server whose one tool does nothing, over the same transports Gatehouse uses.</summary>
public static class NoopServer
{
    /// <summary>
    /// Serves the no-op tool over HTTP on <paramref name="port"/> until Ctrl-C or SIGTERM; as the benchmark's child
    /// (<paramref name="child"/>), also once its input, a pipe from the benchmark, closes: a benchmark that is killed takes its
    /// server with it.
    /// </summary>
    public static async Task RunHttpAsync(int port, bool child)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Services.AddMcpServer().WithHttpTransport().WithTools<NoopTools>();
        await using var app = builder.Build();
        app.MapMcp("/mcp");
        await app.StartAsync();
        Console.WriteLine($"no-op MCP server at {app.Urls.First()}/mcp; Ctrl-C stops it");
        if (child)
        {
            _ = Task.Run(async () =>
            {
                await Console.In.ReadToEndAsync();
                app.Lifetime.StopApplication();
            });
        }

        await app.WaitForShutdownAsync();
    }

    /// <summary>
    /// This program serving the no-op tool over HTTP as a child process (<c>noop-http PORT --child</c>), once it answers. It runs with
    /// the runtime settings the gateway ships with (its project's GC and JIT settings, the image's environment), so the two
    /// servers' CPU time differs by what they do, not by how .NET runs them.
    /// </summary>
    public static async Task<NoopChild> StartChildAsync(string program, int port)
    {
        var start = new ProcessStartInfo(program, ["noop-http", port.ToString(CultureInfo.InvariantCulture), "--child"]) { RedirectStandardOutput = true, RedirectStandardInput = true };
        start.Environment["DOTNET_gcServer"] = "0";
        start.Environment["DOTNET_gcConcurrent"] = "0";
        start.Environment["DOTNET_TieredPGO"] = "0";
        // The runtime reads numbers from DOTNET_ variables in hexadecimal: 0x3E8 is the gateway's threshold of 1,000 calls.
        start.Environment["DOTNET_TC_CallCountThreshold"] = "3E8";
        foreach (var (name, value) in GatewayProcess.ImageEnvironment.Value)
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start)!;
        var url = new Uri($"http://127.0.0.1:{port}/mcp");
        using var http = new HttpClient();
        for (var i = 0; i < 500; i++)
        {
            try
            {
                // Any answer from /mcp (a GET without a session is refused) says Kestrel is listening.
                using var answer = await http.GetAsync(url);
                _ = process.StandardOutput.ReadToEndAsync();
                return new NoopChild(process, url);
            }
            catch (HttpRequestException)
            {
                await Task.Delay(20);
            }
        }

        process.Kill();
        throw new InvalidOperationException("the no-op MCP server did not start");
    }

    public static async Task RunStdioAsync()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddMcpServer().WithStdioServerTransport().WithTools<NoopTools>();
        await builder.Build().RunAsync();
    }
}

/// <summary>The no-op HTTP server running as a child process; disposing it stops it.</summary>
public sealed class NoopChild(Process process, Uri url) : IDisposable
{
    public Process Process { get; } = process;

    public Uri Url { get; } = url;

    public void Dispose()
    {
        Process.Kill(entireProcessTree: true);
        Process.WaitForExit();
        Process.Dispose();
    }
}

[McpServerToolType]
public sealed class NoopTools
{
    [McpServerTool(Name = "noop"), Description("Does nothing and answers at once.")]
    public static string Noop(string sql) => sql.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
