using System.ComponentModel;
using ModelContextProtocol.Server;

namespace Gatehouse.Load;

/// <summary>The transport floor: an MCP server whose one tool does nothing, over the same transports Gatehouse uses.</summary>
public sealed class NoopServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private NoopServer(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    public Uri Url { get; }

    public static async Task<NoopServer> StartHttpAsync(int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Services.AddMcpServer().WithHttpTransport().WithTools<NoopTools>();
        var app = builder.Build();
        app.MapMcp("/mcp");
        await app.StartAsync();
        return new NoopServer(app, new Uri(app.Urls.First() + "/mcp"));
    }

    public static async Task RunStdioAsync()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddMcpServer().WithStdioServerTransport().WithTools<NoopTools>();
        await builder.Build().RunAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

[McpServerToolType]
public sealed class NoopTools
{
    [McpServerTool(Name = "noop"), Description("Does nothing and answers at once.")]
    public static string Noop(string sql) => sql.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
