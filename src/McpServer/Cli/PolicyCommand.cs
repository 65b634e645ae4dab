using System.CommandLine;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Cli;

/// <summary>
/// <c>gatehouse policy check</c>: policy as code, validated in CI before it reaches a gateway. <c>gatehouse policy
/// explain</c>: what the gateway would decide for one statement, and why, without running it.
/// </summary>
public static class PolicyCommand
{
    private const string NotJudged = "token scopes and quotas (they depend on the token and on traffic)";

    public static Command Create() => new("policy", "Policy as code: validate a policy file before a gateway loads it, and explain its decisions.") { Check(), Explain() };

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
            foreach (var note in PolicyNotes.Of(policy))
            {
                Console.WriteLine($"note: {note}");
            }

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

    // Time-boxed grants and agent switches live in the state. A policy explained where no gateway has run (in CI) has none,
    // and is explained against an empty store of its own, which is removed after, rather than given one at its path.
    private static async Task<DisposableState> ExplainStateAsync(GatewayPolicy policy, CancellationToken cancellationToken)
    {
        try
        {
            return new DisposableState((await GatewayState.OpenAsync(policy, cancellationToken, create: false)).Store, null);
        }
        catch (MissingStateException e)
        {
            await Console.Error.WriteLineAsync($"gatehouse: {e.Summary}; explained as if no grant was time-boxed and no agent disabled.");
            var path = Path.Combine(Path.GetTempPath(), $"gatehouse-explain-{Guid.NewGuid():N}.db");
            return new DisposableState(await SqliteStateStore.OpenAsync(path, cancellationToken), path);
        }
    }

    private sealed record DisposableState(SqlStateStore Store, string? TemporaryPath) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            if (TemporaryPath is not null)
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                foreach (var file in new[] { TemporaryPath, TemporaryPath + "-wal", TemporaryPath + "-shm" }.Where(File.Exists))
                {
                    File.Delete(file);
                }
            }

            return ValueTask.CompletedTask;
        }
    }

    private static Command Explain()
    {
        var config = CliApp.ConfigOption();
        var agent = new Option<string>("--agent") { Description = "The agent (the token's agent claim).", Required = true };
        var groups = new Option<string[]>("--groups") { Description = "The agent's groups (the token's groups claim), space or comma separated.", AllowMultipleArgumentsPerToken = true };
        var connection = new Option<string>("--connection") { Description = "The connection the statement is for.", Required = true };
        var sql = new Option<string>("--sql") { Description = "The statement, as the agent would send it.", Required = true };
        var parameters = new Option<string[]>("--param") { Description = "A positional parameter ($1, $2, …), in order; repeat for each.", AllowMultipleArgumentsPerToken = false };
        var json = CliApp.JsonOption();
        var command = new Command(
            "explain",
            $"What the query tool would decide for this statement, step by step (classification, grants, masking, guardrails, approval), through the same pipeline; PostgreSQL only plans it, nothing runs or is recorded. Exit {ExitCodes.Ok} when it would run, {ExitCodes.Refused} when it would be refused or wait for approval.")
        {
            config, agent, groups, connection, sql, parameters, json,
        };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var policy = PolicyLoader.LoadFile(parse.GetValue(config)!);
            await using var state = await ExplainStateAsync(policy, cancellationToken);
            var identity = new AgentIdentity(
                parse.GetValue(agent)!,
                (parse.GetValue(groups) ?? []).SelectMany(g => g.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Distinct(StringComparer.Ordinal).ToList(),
                "policy explain",
                parse.GetValue(agent)!,
                null,
                DateTimeOffset.UtcNow.AddHours(1));
            var request = new QueryRequest(parse.GetValue(connection), parse.GetValue(sql), parse.GetValue(parameters) ?? [], null);

            // The gateway's own composition, so the explanation comes from the very pipeline that serves calls.
            var services = new ServiceCollection().AddLogging();
            services.AddGateway(policy, new GatewayState(state.Store));
            await using var provider = services.BuildServiceProvider();
            var explanation = await provider.GetRequiredService<GatewayPipeline>().ExplainAsync(identity, request, cancellationToken);

            var exitCode = explanation.Decision.IsAllowed ? ExitCodes.Ok : ExitCodes.Refused;
            if (parse.GetValue(json))
            {
                Output.WriteJson(new
                {
                    Decision = explanation.NeedsApproval ? "needs_approval" : explanation.Decision.Verdict.ToString().ToLowerInvariant(),
                    explanation.Decision.Rule,
                    explanation.Decision.Reason,
                    explanation.Steps,
                    NotJudged = NotJudged,
                });
                return exitCode;
            }

            Console.WriteLine($"Agent '{identity.Agent}' on connection '{request.Connection}':");
            foreach (var step in explanation.Steps)
            {
                Console.WriteLine($"  {step.Step,-15} {step.Detail}");
            }

            Console.WriteLine($"Not judged: {NotJudged}.");
            return exitCode;
        }));
        return command;
    }

    private static string Count(int n, string what) => $"{n} {what}{(n == 1 ? "" : "s")}";
}
