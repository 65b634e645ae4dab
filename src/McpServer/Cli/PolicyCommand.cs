using System.CommandLine;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse policy check</c>: policy as code, validated in CI before it reaches a gateway.</summary>
public static class PolicyCommand
{
    public static Command Create() => new("policy", "Policy as code: validate a policy file before a gateway loads it.") { Check() };

    private static Command Check()
    {
        var config = CliApp.ConfigOption();
        var connection = new Option<string?>("--connection") { Description = "Also check, in the live database, that the schemas, tables, tagged columns and mapped roles this connection's part of the policy names exist." };
        var command = new Command("check", $"Validate a policy file: every error with its file and line (exit {ExitCodes.Error}); with --connection, what it names must exist in the database (exit {ExitCodes.Drift} when not).")
        {
            config, connection,
        };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var policy = PolicyLoader.LoadFile(parse.GetValue(config)!);
            Console.WriteLine($"{policy.SourcePath} ({policy.Hash}) is valid: {Count(policy.Connections.Count, "connection")}, {Count(policy.Issuers.Count, "issuer")}, "
                + $"{Count(policy.Agents.Count, "agent")}, {Count(policy.Groups.Count, "group")}, {Count(policy.Guardrails.Count, "guardrail")}.");
            if (parse.GetValue(connection) is not { } name)
            {
                return ExitCodes.Ok;
            }

            if (!policy.Connections.ContainsKey(name))
            {
                throw new CliException($"the policy has no connection '{name}' (it has: {string.Join(", ", policy.Connections.Keys)})");
            }

            await using var targets = new PostgresTargets(policy.Connections);
            var catalog = new PostgresCatalog(targets);
            IReadOnlyList<string> problems;
            try
            {
                var tables = await catalog.DescribeAsync(name, null, null, cancellationToken);
                var (schemas, roles) = await catalog.SchemasAndRolesAsync(name, cancellationToken);
                problems = PolicyCatalogCheck.Problems(policy, name, tables, schemas, roles);
            }
            catch (Enforcement.Execution.DatabaseException e)
            {
                throw new CliException($"connection {name}: {e.Message}");
            }

            foreach (var problem in problems)
            {
                Console.WriteLine($"connection {name}: {problem}");
            }

            Console.WriteLine(problems.Count == 0 ? $"connection {name}: everything the policy names exists." : $"connection {name}: {Count(problems.Count, "problem")}.");
            return problems.Count == 0 ? ExitCodes.Ok : ExitCodes.Drift;
        }));
        return command;
    }

    private static string Count(int n, string what) => $"{n} {what}{(n == 1 ? "" : "s")}";
}
