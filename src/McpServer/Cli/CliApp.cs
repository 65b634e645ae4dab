using System.CommandLine;
using System.Data.Common;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Cli;

/// <summary>The <c>gatehouse</c> command line: one binary for serving, minting dev tokens, reading the audit log and approving requests.</summary>
public static class CliApp
{
    public static RootCommand Build()
    {
        var root = new RootCommand("Gatehouse: an MCP gateway that lets AI agents use PostgreSQL under their own identity, with policy, approvals and a full audit trail.");
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(TokenCommand.Create());
        root.Subcommands.Add(AuditCommand.Create());
        root.Subcommands.Add(ApprovalsCommand.Create());
        root.Subcommands.Add(GrantsCommand.Create());
        root.Subcommands.Add(AgentsCommand.Create());
        root.Subcommands.Add(ClassifyCommand.Create());
        root.Subcommands.Add(SetupCommand.Create());
        root.Subcommands.Add(PolicyCommand.Create());
        root.Subcommands.Add(ConnectionsCommand.Create());
        root.Subcommands.Add(DemoCommand.Create());
        return root;
    }

    public static Option<string> ConfigOption() => new("--config", "-c")
    {
        Description = "Path to the policy file (YAML).",
        Required = true,
    };

    public static Option<bool> JsonOption() => new("--json") { Description = "Print JSON instead of a table." };

    /// <summary>Runs a command body, turning expected failures into one clear line on stderr and a non-zero exit code.</summary>
    /// <param name="runsUntilStopped">
    /// For a server: being stopped is how it ends (exit 0). Anything else stopped midway says so and exits non-zero, so a
    /// script does not take a partial export, an unfinished verification or a rolled-back setup for a success.
    /// </param>
    public static Func<ParseResult, CancellationToken, Task<int>> Guarded(Func<ParseResult, CancellationToken, Task<int>> body, bool runsUntilStopped = false) => async (result, cancellationToken) =>
    {
        try
        {
            return await body(result, cancellationToken);
        }
        catch (PolicyException e)
        {
            await Console.Error.WriteLineAsync("gatehouse: the policy file is not valid:");
            foreach (var error in e.Errors)
            {
                await Console.Error.WriteLineAsync("  " + error);
            }

            return ExitCodes.Error;
        }
        catch (Exception e) when (e is LocalPostgresException or CliException or IOException or UnauthorizedAccessException or FormatException)
        {
            await Console.Error.WriteLineAsync($"gatehouse: {e.Message}");
            return e is CliException { Refused: true } ? ExitCodes.Refused : ExitCodes.Error;
        }
        catch (Exception e) when (e is DbException or TimeoutException)
        {
            // The state store (SQLite or PostgreSQL) or a connection's database: its own message says which and why.
            await Console.Error.WriteLineAsync($"gatehouse: database error: {e.Message}");
            return ExitCodes.Error;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            if (runsUntilStopped)
            {
                return ExitCodes.Ok;
            }

            await Console.Error.WriteLineAsync("gatehouse: interrupted before it finished; what it was doing is incomplete.");
            return ExitCodes.Interrupted;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Anything else (an unset password variable, an unreadable key file) still gets one line, not a stack trace.
            await Console.Error.WriteLineAsync($"gatehouse: {Output.Printable(e.Message)}");
            return ExitCodes.Error;
        }
    };

    /// <summary>The policy and the gateway's whole state, the audit log included (which may live in PostgreSQL).</summary>
    /// <param name="create">Whether a missing state file may be made (only by what starts a gateway); see <see cref="GatewayState.OpenAsync"/>.</param>
    public static async Task<(GatewayPolicy Policy, GatewayState State)> LoadGatewayAsync(string configPath, CancellationToken cancellationToken, bool create = false)
    {
        var policy = PolicyLoader.LoadFile(configPath);
        return (policy, await GatewayState.OpenAsync(policy, cancellationToken, create));
    }

    /// <summary>
    /// Where an admin action taken from the CLI is recorded: the store, and the live sink too when the policy names one, as
    /// a gateway records it; the SIEM would otherwise never see a switch flipped or a request decided from the command line.
    /// </summary>
    public static IAuditStore Recorder(GatewayPolicy policy, IAuditStore store) =>
        policy.Gateway.Audit.Sink is { } sink ? AuditSink.ToFile(store, sink) : store;

    public static async Task<(GatewayPolicy Policy, SqlStateStore State)> LoadAsync(string configPath, CancellationToken cancellationToken)
    {
        var (policy, state) = await LoadGatewayAsync(configPath, cancellationToken);
        return (policy, state.Store);
    }
}

/// <summary>A CLI failure with a message for the user; <see cref="Refused"/> marks a refusal rather than an error.</summary>
public sealed class CliException(string message, bool refused = false) : Exception(message)
{
    public bool Refused { get; } = refused;
}
