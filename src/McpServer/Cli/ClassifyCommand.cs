using System.CommandLine;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse classify</c>: proposes column tags as a YAML snippet, from names, comments and sampled values (never printed).</summary>
public static class ClassifyCommand
{
    public static Command Create()
    {
        var config = CliApp.ConfigOption();
        var connection = new Option<string>("--connection") { Description = "The connection to scan.", Required = true };
        var sample = new Option<int>("--sample") { Description = "Rows to sample per table (0: names and comments only).", DefaultValueFactory = _ => 100 };
        var command = new Command("classify", "Scan a connection's tables and print proposed sensitive-column tags as YAML. Sampled values are only counted, never printed.")
        {
            config, connection, sample,
        };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var policy = PolicyLoader.LoadFile(parse.GetValue(config)!);
            var name = parse.GetValue(connection)!;
            if (!policy.Connections.ContainsKey(name))
            {
                throw new CliException($"there is no connection named '{name}'; the policy has: {string.Join(", ", policy.Connections.Keys)}");
            }

            var rows = Math.Clamp(parse.GetValue(sample), 0, 10_000);
            await using var targets = new PostgresTargets(policy.Connections);
            try
            {
                var tables = await new PostgresCatalog(targets).DescribeAsync(name, null, null, cancellationToken);
                var sampler = new PostgresSampler(targets);
                await Console.Out.WriteLineAsync($"# Proposed tags for connection '{name}' ({tables.Count} tables, {rows} rows sampled per table). Review before use.");
                await Console.Out.WriteLineAsync("masking: overlay\ntags:");
                for (var i = 0; i < tables.Count; i++)
                {
                    var table = tables[i];
                    await Console.Error.WriteLineAsync($"[{i + 1}/{tables.Count}] {table.Name}");
                    var samples = rows == 0 || table.Kind != "table"
                        ? new Dictionary<string, List<string>>()
                        : await sampler.SampleAsync(name, table.Name, rows, cancellationToken);
                    foreach (var column in table.Columns)
                    {
                        if (ColumnClassifier.Propose(column, samples.GetValueOrDefault(column.Name) ?? []) is { } tag)
                        {
                            await Console.Out.WriteLineAsync($"  {$"{table.Name}.{column.Name}:",-40} {tag.Class,-10} # {tag.Reason}");
                        }
                    }
                }
            }
            catch (DatabaseException e)
            {
                throw new CliException($"could not scan connection '{name}': {ContentDetectors.Mask(e.Message, new MaskingCounts())}");
            }

            return 0;
        }));
        return command;
    }
}
