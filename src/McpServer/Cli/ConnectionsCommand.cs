using System.CommandLine;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Execution;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse connections rotate</c>: a rotated database password takes effect on every gateway, with no agent change.</summary>
public static class ConnectionsCommand
{
    public static Command Create() => new("connections", "Operate the gateway's database connections.") { Rotate() };

    private static Command Rotate()
    {
        var config = CliApp.ConfigOption();
        var name = new Argument<string>("connection") { Description = "The connection whose password was rotated." };
        var by = new Option<string>("--as") { Description = "Who asks for the rotation (default: the OS user).", DefaultValueFactory = _ => Environment.UserName };
        var command = new Command(
            "rotate",
            "After a database password changed (and the connection's password_file, or passfile, holds the new one): checks that the new password logs in, then has every gateway sharing this state drain its pool within a second. Calls in flight finish; the next ones log in with the new password.")
        {
            name, config, by,
        };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (policy, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var connection = parse.GetValue(name)!;
            if (!policy.Connections.ContainsKey(connection))
            {
                throw new CliException($"the policy has no connection '{connection}' (it has: {string.Join(", ", policy.Connections.Keys)})");
            }

            if (policy.Connections[connection].Password.EnvironmentVariable is { } variable)
            {
                throw new CliException($"connection {connection} reads its password from the environment variable {variable}, which a running gateway never sees change: restart the gateways with the new value, or use password_file so rotation needs no restart");
            }

            // Draining onto a password PostgreSQL refuses would fail every call: check it first.
            await using (var targets = new PostgresTargets(policy.Connections))
            {
                try
                {
                    await using var check = await targets.OpenAsync(connection, cancellationToken);
                }
                catch (DatabaseException e)
                {
                    throw new CliException($"connection {connection}: the password as it is now does not log in ({e.Message}); nothing was drained. Put the password PostgreSQL expects in the connection's password file or variable, then run this again");
                }
            }

            var who = parse.GetValue(by)!;
            var generation = await state.Store.RequestRotationAsync(connection, who, cancellationToken);
            var message = $"Connection {connection}: the new password logs in; every gateway sharing this state drains its pool within a second (rotation {generation}). Calls in flight finish; the next ones log in with the new password.";
            await CliApp.Recorder(policy, state.Audit).RecordAsync(DateTimeOffset.UtcNow, "connections rotate", "cli", who, connection, done: true, "connection.rotate", message);
            Console.WriteLine(message);
            return 0;
        }));
        return command;
    }
}
