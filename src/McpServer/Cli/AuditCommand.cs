using System.CommandLine;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse audit list|show|sessions|replay|verify|purge|export</c>: what every agent did, and proof nobody changed it.</summary>
public static partial class AuditCommand
{
    public static Command Create() => new("audit", "Read the audit log of tool calls, and check it has not been tampered with.") { List(), Show(), Sessions(), Replay(), Verify(), Purge(), Export() };

    private static Command Purge()
    {
        var config = CliApp.ConfigOption();
        var olderThan = new Option<string>("--older-than") { Description = "Remove records finished longer ago than this, e.g. 90d.", Required = true };
        var command = new Command("purge", "Retention: remove old records and leave a signed checkpoint, so what remains still verifies.") { config, olderThan };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var age = Durations.Parse(parse.GetValue(olderThan)!);
            if (age < TimeSpan.FromHours(1))
            {
                throw new CliException("--older-than must be at least 1h: purging is for retention, not for hiding recent calls");
            }

            var (policy, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var checkpoint = await state.Audit.PurgeAsync(new RetentionCut(null) { OlderThan = age }, CheckpointKey.For(policy).Sign, cancellationToken);
            if (checkpoint is not null)
            {
                await CliApp.Recorder(policy, state.Audit).RecordPurgeAsync(DateTimeOffset.UtcNow, "cli", Environment.UserName, checkpoint);
            }

            await Console.Out.WriteLineAsync(checkpoint is null
                ? $"Nothing finished before {Output.Time(DateTimeOffset.UtcNow - age)}; nothing purged."
                : $"Purged {checkpoint.Purged} record(s) through chain link {checkpoint.ThroughSeq}; the signed checkpoint keeps the rest verifiable.");
            return 0;
        }));
        return command;
    }

    private static Command Sessions()
    {
        var config = CliApp.ConfigOption();
        var agent = new Option<string?>("--agent") { Description = "Only this agent's sessions." };
        var limit = new Option<int>("--limit") { Description = "At most this many sessions.", DefaultValueFactory = _ => 50 };
        var json = CliApp.JsonOption();
        var command = new Command("sessions", "List recent sessions (an MCP session, or one stdio process), newest first.") { config, agent, limit, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var sessions = await state.Audit.SessionsAsync(parse.GetValue(agent), Math.Clamp(parse.GetValue(limit), 1, 10_000), cancellationToken);
            if (parse.GetValue(json))
            {
                Output.WriteJson(sessions);
                return 0;
            }

            Output.WriteTable(
                ["SESSION", "AGENT", "FIRST", "LAST", "CALLS", "DENIED", "FAILED"],
                sessions.Select(s => (IReadOnlyList<string>)[s.SessionId, s.Agent ?? "-", Output.Time(s.First), Output.Time(s.Last), $"{s.Calls}", $"{s.Denied}", $"{s.Failed}"]));
            return 0;
        }));
        return command;
    }

    private static Command Replay()
    {
        var config = CliApp.ConfigOption();
        var session = new Argument<string>("session") { Description = "The session id (audit sessions lists them)." };
        var json = CliApp.JsonOption();
        var command = new Command("replay", "Print one session as a timeline: each call, what it was, the decision and why, rows, masking and timing.") { session, config, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var id = parse.GetValue(session)!;
            var calls = await state.Audit.SessionAsync(id, cancellationToken);
            if (calls.Count == 0)
            {
                throw new CliException($"no session '{id}' in the audit log; gatehouse audit sessions lists them", refused: true);
            }

            if (parse.GetValue(json))
            {
                Output.WriteJson(calls);
                return 0;
            }

            var start = calls[0].Time;
            await Console.Out.WriteLineAsync($"Session {Output.Printable(id)}: agent {Output.Printable(calls[0].Agent ?? "(unidentified)")}, {calls.Count} call(s) from {Output.Time(start)} over {Durations.Format(calls[^1].Time - start)}");
            foreach (var call in calls)
            {
                await Console.Out.WriteLineAsync($"+{(call.Time - start).TotalSeconds,8:0.000}s  {Output.Printable(call.Tool),-16} {call.Decision,-8} {call.Rule}  ({call.DurationMs:0.0} ms{(call.RowCount is { } rows ? $", {rows} row(s)" : "")}{(call.Masking is { } m ? $", masked {m}" : "")})");
                if (call.Sql is not null)
                {
                    await Console.Out.WriteLineAsync($"           sql: {Output.Clip(call.Sql, 200)}");
                }

                if (call.Classification is not null)
                {
                    await Console.Out.WriteLineAsync($"           touches: {Output.Clip(call.Classification, 200)}");
                }

                await Console.Out.WriteLineAsync($"           why: {Output.Clip(call.Reason, 300)}  [{call.Id}]");
            }

            return 0;
        }));
        return command;
    }

    private static Command Verify()
    {
        var config = CliApp.ConfigOption();
        var command = new Command("verify", $"Check the audit log's hash chain: any record changed, deleted, inserted or reordered is named (exit {ExitCodes.Drift}).") { config };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (policy, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var report = await state.Audit.VerifyChainAsync(CheckpointKey.For(policy).Verify, cancellationToken);
            foreach (var problem in report.Problems)
            {
                await Console.Out.WriteLineAsync($"tampered: {Output.Printable(problem)}");
            }

            if (report.Unlisted > 0)
            {
                await Console.Out.WriteLineAsync($"tampered: {report.Unlisted} more problem(s), not listed.");
            }

            await Console.Out.WriteLineAsync(report.Intact
                ? $"Intact: {report.Sealed} sealed record(s) chain back to the first; {report.Open} call(s) still open."
                : $"Not intact: {report.ProblemCount} problem(s) in {report.Sealed} sealed record(s).");
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
            var (_, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var records = await state.Audit.ListAsync(query, cancellationToken);
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
            var (_, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var record = await state.Audit.GetAsync(parse.GetValue(id)!, cancellationToken)
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
                    ("subject", record.Subject), ("token id", record.TokenId), ("client", record.ClientId), ("on behalf of", record.DelegatedBy),
                    ("connection", record.Connection), ("sql", record.Sql),
                    ("parameters", record.Parameters), ("classification", record.Classification), ("decision", record.Decision.ToString()),
                    ("rule", record.Rule), ("reason", record.Reason), ("rows", record.RowCount?.ToString()),
                    ("duration", $"{record.DurationMs:0.0} ms"), ("error", record.Error), ("masked", record.Masking),
                }.Select(f => (IReadOnlyList<string>)[f.Item1, Output.Clip(f.Item2 ?? "-", 4000)]));
            return 0;
        }));
        return command;
    }

    private static Verdict ParseVerdict(string text) =>
        // By name only: Enum.TryParse also takes numbers, and --decision 7 matched nothing without a word.
        text.Length > 0 && text.All(char.IsAsciiLetter) && Enum.TryParse<Verdict>(text, ignoreCase: true, out var verdict)
            ? verdict
            : throw new CliException($"--decision must be allowed, denied, failed or started (got '{text}')");
}
