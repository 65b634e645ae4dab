using System.CommandLine;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse audit list|show</c>: what every agent did, newest first.</summary>
public static class AuditCommand
{
    public static Command Create() => new("audit", "Read the audit log of tool calls, and check it has not been tampered with.") { List(), Show(), Verify() };

    private static Command Verify()
    {
        var config = CliApp.ConfigOption();
        var command = new Command("verify", $"Check the audit log's hash chain: any record changed, deleted, inserted or reordered is named (exit {ExitCodes.Drift}).") { config };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var report = await state.VerifyChainAsync(cancellationToken);
            foreach (var problem in report.Problems)
            {
                await Console.Out.WriteLineAsync($"tampered: {problem}");
            }

            await Console.Out.WriteLineAsync(report.Intact
                ? $"Intact: {report.Sealed} sealed record(s) chain back to the first; {report.Open} call(s) still open."
                : $"Not intact: {report.Problems.Count} problem(s) in {report.Sealed} sealed record(s).");
            return report.Intact ? ExitCodes.Ok : ExitCodes.Drift;
        }));
        return command;
    }

    private static Command List()
    {
        var config = CliApp.ConfigOption();
        var agent = new Option<string?>("--agent") { Description = "Only calls by this agent." };
        var since = new Option<string?>("--since") { Description = "Only calls in this window, e.g. 1h or 7d." };
        var decision = new Option<string?>("--decision") { Description = "Only calls with this decision: allowed, denied, failed or started." };
        var limit = new Option<int>("--limit") { Description = "At most this many records.", DefaultValueFactory = _ => 100 };
        var json = CliApp.JsonOption();
        var command = new Command("list", "List recorded tool calls, newest first.") { config, agent, since, decision, limit, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var query = new AuditQuery(
                parse.GetValue(agent),
                parse.GetValue(since) is { } s ? DateTimeOffset.UtcNow - Durations.Parse(s) : null,
                parse.GetValue(decision) is { } d ? ParseVerdict(d) : null,
                Math.Clamp(parse.GetValue(limit), 1, 100_000));
            var (_, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var records = await state.ListAsync(query, cancellationToken);
            if (parse.GetValue(json))
            {
                Output.WriteJson(records);
                return 0;
            }

            Output.WriteTable(
                ["TIME", "ID", "AGENT", "TOOL", "DECISION", "RULE", "CONNECTION", "SQL"],
                records.Select(r => (IReadOnlyList<string>)[Output.Time(r.Time), r.Id, r.Agent ?? "-", r.Tool, r.Decision.ToString(), r.Rule, r.Connection ?? "-", Output.Clip(r.Sql, 60)]));
            return 0;
        }));
        return command;
    }

    private static Command Show()
    {
        var config = CliApp.ConfigOption();
        var id = new Argument<string>("id") { Description = "The audit record id (aud_...)." };
        var json = CliApp.JsonOption();
        var command = new Command("show", "Show one recorded call in full.") { id, config, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var record = await state.GetAsync(parse.GetValue(id)!, cancellationToken)
                ?? throw new CliException($"no audit record with id '{parse.GetValue(id)}'", refused: true);
            if (parse.GetValue(json))
            {
                Output.WriteJson(record);
                return 0;
            }

            Output.WriteTable(
                ["FIELD", "VALUE"],
                new (string, string?)[]
                {
                    ("id", record.Id), ("time", Output.Time(record.Time)), ("tool", record.Tool), ("transport", record.Transport),
                    ("session", record.SessionId), ("agent", record.Agent), ("groups", string.Join(",", record.Groups)), ("issuer", record.Issuer),
                    ("subject", record.Subject), ("token id", record.TokenId), ("connection", record.Connection), ("sql", record.Sql),
                    ("parameters", record.Parameters), ("classification", record.Classification), ("decision", record.Decision.ToString()),
                    ("rule", record.Rule), ("reason", record.Reason), ("rows", record.RowCount?.ToString()),
                    ("duration", $"{record.DurationMs:0.0} ms"), ("error", record.Error), ("masked", record.Masking),
                }.Select(f => (IReadOnlyList<string>)[f.Item1, Output.Clip(f.Item2 ?? "-", 4000)]));
            return 0;
        }));
        return command;
    }

    private static Verdict ParseVerdict(string text) =>
        Enum.TryParse<Verdict>(text, ignoreCase: true, out var verdict)
            ? verdict
            : throw new CliException($"--decision must be allowed, denied, failed or started (got '{text}')");
}
