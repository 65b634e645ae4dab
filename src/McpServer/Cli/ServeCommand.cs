using System.CommandLine;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse serve</c>: MCP over stdio (one agent, token from env or file) or Streamable HTTP (Bearer token per request).</summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var config = CliApp.ConfigOption();
        var tokenFile = new Option<string?>("--token-file") { Description = $"stdio: read the agent token from this file (re-read on every call) instead of ${StdioCallerToken.EnvironmentVariable}." };
        var http = new Option<string?>("--http") { Description = "Serve MCP over Streamable HTTP at http://ADDRESS:PORT/mcp instead of stdio, e.g. 127.0.0.1:8787." };
        var command = new Command("serve", "Serve the query, describe_schema and request_access tools over MCP.") { config, tokenFile, http };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (policy, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken, create: true);
            if (parse.GetValue(http) is { } endpoint)
            {
                return await HttpHost.RunAsync(policy, state, CheckEndpoint(endpoint), onStarted: null, cancellationToken);
            }

            var file = parse.GetValue(tokenFile);
            var environmentToken = Environment.GetEnvironmentVariable(StdioCallerToken.EnvironmentVariable);
            if (file is null && string.IsNullOrWhiteSpace(environmentToken))
            {
                throw new CliException($"no agent token: set {StdioCallerToken.EnvironmentVariable} or pass --token-file (mint a dev token with: gatehouse token mint --config FILE --agent NAME)", refused: true);
            }

            if (file is not null && !File.Exists(file))
            {
                throw new CliException($"the token file {file} does not exist", refused: true);
            }

            return await StdioHost.RunAsync(policy, state, new StdioCallerToken(environmentToken, file), cancellationToken);
        }, runsUntilStopped: true));
        return command;
    }

    public static string CheckEndpoint(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint[(colon + 1)..], out var port) || port is < 0 or > 65535)
        {
            throw new CliException($"--http takes ADDRESS:PORT, for example 127.0.0.1:8787 (got '{endpoint}')");
        }

        return endpoint;
    }
}
