using System.CommandLine;
using Gatehouse.Connectors.State;
using Gatehouse.Connectors.Webhooks;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Admin;

namespace Gatehouse.McpServer.Cli;

/// <summary>
/// <c>gatehouse approvals list|show|approve|deny|cancel</c>: decide agents' access requests (req_…) and the statements
/// guardrails sent for approval (apr_…). Every decision is recorded in the audit log.
/// </summary>
public static class ApprovalsCommand
{
    public static Command Create() => new("approvals", "Review and decide agents' access requests and statements waiting for approval.")
    {
        List(), Show(), Decide("approve", true), Decide("deny", false), Cancel(),
    };

    private static Command List()
    {
        var config = CliApp.ConfigOption();
        var all = new Option<bool>("--all") { Description = "Include decided, used and expired requests, not only pending ones." };
        var json = CliApp.JsonOption();
        var command = new Command("list", "List requests (pending ones by default).") { config, all, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var now = DateTimeOffset.UtcNow;
            var requests = await state.ListAsync(parse.GetValue(all) ? null : AccessRequestStatus.Pending, now, cancellationToken);
            var statements = await state.ListStatementsAsync(parse.GetValue(all), now, cancellationToken);
            if (parse.GetValue(json))
            {
                Output.WriteJson(new { access = requests.Select(RequestViews.Access), statements = statements.Select(RequestViews.Statement) });
                return 0;
            }

            Output.WriteTable(
                ["ID", "CREATED", "AGENT", "CONNECTION", "WHAT", "STATUS", "DETAIL"],
                requests.Select(r => (IReadOnlyList<string>)[r.Id, Output.Time(r.CreatedAt), r.Agent, r.Connection, $"{r.AccessText} {r.Scope} for {Durations.Format(r.Duration)}", $"{r.Status} ({r.Approvals}/{r.Required})", Output.Clip(r.Reason, 60)])
                    .Concat(statements.Select(s => (IReadOnlyList<string>)[s.Id, Output.Time(s.CreatedAt), s.Agent, s.Connection, Output.Clip(s.Sql, 60), $"{s.Status} ({s.Approvals}/{s.Required})", DryRun(s)])));
            return 0;
        }));
        return command;
    }

    private static Command Show()
    {
        var config = CliApp.ConfigOption();
        var id = new Argument<string>("id") { Description = "The request id (req_… or apr_…)." };
        var json = CliApp.JsonOption();
        var command = new Command("show", "Show one request in full: the statement, its parameters, the dry run and every decision.") { id, config, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var requestId = parse.GetValue(id)!;
            object shown = requestId.StartsWith("apr_", StringComparison.Ordinal)
                ? RequestViews.Statement(await state.GetStatementAsync(requestId, DateTimeOffset.UtcNow, cancellationToken) ?? throw NotFound(requestId))
                : RequestViews.Access(await state.GetAsync(requestId, DateTimeOffset.UtcNow, cancellationToken) ?? throw NotFound(requestId));
            Output.WriteJson(shown);
            return 0;
        }));
        return command;
    }

    private static Command Decide(string verb, bool approve)
    {
        var config = CliApp.ConfigOption();
        var id = new Argument<string>("id") { Description = "The request id (req_… or apr_…)." };
        var reason = new Option<string?>("--reason") { Description = "Why, recorded with the decision." };
        var approver = new Option<string>("--as") { Description = "Who decides (default: the OS user).", DefaultValueFactory = _ => Environment.UserName };
        var json = CliApp.JsonOption();
        var command = new Command(verb, approve
            ? "Approve a pending request: once it has approvals.required approvals, an access request becomes a time-boxed grant and a statement may run once."
            : "Deny a pending request.")
        {
            id, config, reason, approver, json,
        };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (policy, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var requestId = parse.GetValue(id)!;
            var who = parse.GetValue(approver)!;
            await using var notifier = new CliNotifier(policy.Approvals.Webhook);
            var outcome = await Desk(policy, state, notifier).DecideAsync(requestId, who, null, approve, parse.GetValue(reason), "cli", cancellationToken);
            var message = Done(outcome);
            if (parse.GetValue(json))
            {
                Output.WriteJson(new { id = requestId, decided_by = who, result = message });
            }
            else
            {
                Console.Out.WriteLine(Output.Printable(message));
            }

            return 0;
        }));
        return command;
    }

    private static Command Cancel()
    {
        var config = CliApp.ConfigOption();
        var id = new Argument<string>("id") { Description = "The statement request id (apr_…)." };
        var by = new Option<string>("--as") { Description = "Who cancels (default: the OS user).", DefaultValueFactory = _ => Environment.UserName };
        var command = new Command("cancel", "Cancel a pending statement request; calling query again files a new one.") { id, config, by };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (policy, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            await using var notifier = new CliNotifier(policy.Approvals.Webhook);
            var message = Done(await Desk(policy, state, notifier).CancelAsync(parse.GetValue(id)!, parse.GetValue(by)!, null, "cli", cancellationToken));
            Console.Out.WriteLine(Output.Printable(message));
            return 0;
        }));
        return command;
    }

    /// <summary>The approver's desk over the state file, telling the webhook (if any) before the command exits.</summary>
    internal static ApprovalDesk Desk(GatewayPolicy policy, SqlStateStore state, IApprovalNotifier notifier) =>
        new(new LivePolicy(policy), new NotifyingApprovals(state, state, notifier), CliApp.Recorder(policy, state), TimeProvider.System);

    /// <summary>The desk's sentence when it did the thing; its refusal as a CLI refusal (exit 2) otherwise.</summary>
    internal static string Done(DeskOutcome outcome) => outcome.Done ? outcome.Message : throw new CliException(outcome.Message, refused: true);

    private static CliException NotFound(string id) => new($"no request with id '{id}'", refused: true);

    private static string DryRun(StatementApproval s) => s.DryRunRows is { } rows ? $"dry run: {rows} row(s)" : Output.Clip(s.Reason, 60);
}

/// <summary>The webhook for one CLI run: events are delivered (with retries, up to 15 s) before the command exits.</summary>
internal sealed class CliNotifier(WebhookSettings? settings) : IApprovalNotifier, IAsyncDisposable
{
    private readonly WebhookNotifier? _webhook = settings is null
        ? null
        : new WebhookNotifier(settings, new Serilog.Extensions.Logging.SerilogLoggerFactory(Hosting.Logging.CreateLogger()).CreateLogger("Gatehouse.Webhook"));

    public void Publish(ApprovalEvent approvalEvent) => _webhook?.Publish(approvalEvent);

    public async ValueTask DisposeAsync()
    {
        if (_webhook is not null)
        {
            await _webhook.FlushAsync(TimeSpan.FromSeconds(15));
            await _webhook.DisposeAsync();
        }
    }
}
