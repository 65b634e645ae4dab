using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Serilog;

namespace Gatehouse.McpServer.Hosting;

/// <summary>MCP over stdio for one agent: its token is verified before the server starts and again on every call.</summary>
public static class StdioHost
{
    public static async Task<int> RunAsync(GatewayPolicy policy, GatewayState state, StdioCallerToken token, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], ContentRootPath = AppContext.BaseDirectory });
        Logging.Attach(builder.Logging);
        builder.Services.AddSingleton<ICallerToken>(token);
        builder.Services.AddGateway(policy, state).WithStdioServerTransport();
        using var host = builder.Build();

        var pipeline = host.Services.GetRequiredService<GatewayPipeline>();
        var session = host.Services.GetRequiredService<SessionInfo>();
        var opened = await pipeline.OpenSessionAsync(new CallContext(CallContext.SessionOpen, token.Current(), token.Transport, session.StdioSessionId), cancellationToken);
        if (!opened.Decision.IsAllowed)
        {
            await Console.Error.WriteLineAsync($"gatehouse: the agent token was refused ({opened.Decision.Rule}): {opened.Decision.Reason}");
            return ExitCodes.Refused;
        }

        StartupSummary.Write(policy, $"MCP over stdio; {opened.Decision.Reason}");
        await host.RunAsync(cancellationToken);
        return ExitCodes.Ok;
    }
}
