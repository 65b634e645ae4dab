using System.CommandLine;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Connectors.Postgres.Setup;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Demo;
using Gatehouse.McpServer.Hosting;
using Npgsql;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse demo</c>: a throwaway PostgreSQL with the shop, a policy, agent tokens, and the gateway serving over HTTP.</summary>
public static class DemoCommand
{
    public const string ReadyLine = "Gatehouse demo is ready.";

    public static Command Create()
    {
        var dir = new Option<string?>("--dir") { Description = "Directory for the demo's database, policy, tokens and audit store (default: a new temporary directory)." };
        var http = new Option<string>("--http") { Description = "Where to serve MCP over HTTP (port 0 picks a free port).", DefaultValueFactory = _ => "127.0.0.1:8787" };
        var command = new Command("demo", "Start the one-command tour: a local PostgreSQL with a sample shop, two agents, and the gateway over HTTP. Ctrl-C stops it.") { dir, http };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var endpoint = ServeCommand.CheckEndpoint(parse.GetValue(http)!);
            var directory = Path.GetFullPath(parse.GetValue(dir) ?? Path.Combine(Path.GetTempPath(), "gatehouse-demo-" + Guid.NewGuid().ToString("N")[..8]));
            Directory.CreateDirectory(directory);
            Console.Out.WriteLine($"Starting a throwaway PostgreSQL in {directory}/postgres ...");
            await using var server = await LocalPostgresServer.StartAsync(Path.Combine(directory, "postgres"), cancellationToken);
            try
            {
                var password = await ShopDatabase.CreateAsync(server.AdminConnectionString, "shop", "gatehouse_gateway", cancellationToken, directGrants: false);
                var (policyPath, _) = DemoFiles.Write(directory, server.Port, password, TimeSpan.FromHours(8));
                var (policy, state) = await CliApp.LoadGatewayAsync(policyPath, cancellationToken, create: true);
                await SetUpMaskingAsync(server, policy, cancellationToken);
                return await HttpHost.RunAsync(policy, state, endpoint, url => PrintTourAsync(url, directory, policyPath), cancellationToken);
            }
            finally
            {
                await server.StopAsync();
                Console.Out.WriteLine($"Stopped the demo PostgreSQL. Policy, tokens and audit log stay in {directory}.");
            }
        }, runsUntilStopped: true));
        return command;
    }

    // What `gatehouse setup --admin-connection ...` does, with the throwaway server's superuser.
    private static async Task SetUpMaskingAsync(LocalPostgresServer server, GatewayPolicy policy, CancellationToken cancellationToken)
    {
        var shop = policy.Connections["shop"];
        await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.AdminConnectionString) { Database = "shop" }.ConnectionString);
        await admin.OpenAsync(cancellationToken);
        var report = await ProfileSetup.PlanAsync(admin, policy, shop, shop.Password.Read(), revokePublicExecute: false, cancellationToken);
        if (report.Blockers.Count > 0)
        {
            throw new CliException($"the demo could not set up masking: {string.Join("; ", report.Blockers)}");
        }

        await ProfileSetup.ApplyAsync(admin, report, cancellationToken);
        Console.Out.WriteLine($"Set up strict masking: {report.Profiles.Count} database profiles (one per agent), each a PostgreSQL role with masked views.");
    }

    private static async Task PrintTourAsync(Uri url, string directory, string policyPath)
    {
        var gatehouse = SelfCommand.ShellPrefix();
        var analystToken = Path.Combine(directory, "tokens", "analyst.token");
        var (command, leading) = SelfCommand.Resolve();
        var desktopArgs = string.Join(", ", leading.Concat(["serve", "--config", policyPath, "--token-file", analystToken]).Select(a => $"\"{a}\""));
        await Console.Out.WriteLineAsync($"""

            {ReadyLine}
              MCP endpoint : {url}
              Policy       : {policyPath}
              Agent tokens : {Path.Combine(directory, "tokens.json")} (analyst: read-only; ops-bot: may also write orders)
              Masking      : customers' email, phone, ssn and card_number are masked by PostgreSQL itself (try: select * from customers)

            Try it in the MCP Inspector (Transport: Streamable HTTP, URL above, Authentication: Bearer token = contents of {analystToken}):
              npx @modelcontextprotocol/inspector
            or from its CLI:
              npx @modelcontextprotocol/inspector --cli {url} --transport http --header "Authorization: Bearer $(cat {analystToken})" --method tools/list

            Claude Code:
              claude mcp add --transport http gatehouse {url} --header "Authorization: Bearer $(cat {analystToken})"

            Claude Desktop (stdio), in claude_desktop_config.json:
              {"{"} "mcpServers": {"{"} "gatehouse": {"{"} "command": "{command}", "args": [{desktopArgs}] {"}"} {"}"} {"}"}

            See every call, approve requests and disable agents in the web console:
              {new Uri(url, "/admin")}  (sign in with the contents of {Path.Combine(directory, "tokens", DemoFiles.AdminName + ".token")})
            or from the CLI:
              {gatehouse} audit list --config {policyPath}

            Press Ctrl-C to stop.
            """);
    }
}
