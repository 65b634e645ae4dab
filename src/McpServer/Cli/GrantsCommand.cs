using System.CommandLine;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse grants list|revoke</c>: the time-boxed grants approved access requests gave, and ending one early.</summary>
public static class GrantsCommand
{
    public static Command Create() => new("grants", "List the time-boxed grants approved access requests gave, or end one early.") { List(), Revoke() };

    private static Command List()
    {
        var config = CliApp.ConfigOption();
        var json = CliApp.JsonOption();
        var command = new Command("list", "List active time-boxed grants.") { config, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var active = await state.ListAsync(AccessRequestStatus.Approved, DateTimeOffset.UtcNow, cancellationToken);
            if (parse.GetValue(json))
            {
                Output.WriteJson(active.Select(r => new { r.Id, r.Agent, r.DelegatedBy, r.Connection, Access = r.AccessText, Tables = r.Tables.Select(t => t.ToString()), r.DecidedBy, ApprovedBy = r.Votes.Where(v => v.Approve).Select(v => v.Approver), r.GrantExpiresAt }));
                return 0;
            }

            Output.WriteTable(
                // FOR: the person the agent asked on behalf of; the grant holds only for calls made for them ("-": its own calls).
                ["REQUEST", "AGENT", "FOR", "CONNECTION", "ACCESS", "TABLES", "APPROVED BY", "UNTIL"],
                active.Select(r => (IReadOnlyList<string>)[r.Id, r.Agent, r.DelegatedBy ?? "-", r.Connection, r.AccessText, r.Scope, string.Join(", ", r.Votes.Where(v => v.Approve).Select(v => v.Approver)), Output.Time(r.GrantExpiresAt)]));
            return 0;
        }));
        return command;
    }

    private static Command Revoke()
    {
        var config = CliApp.ConfigOption();
        var id = new Argument<string>("id") { Description = "The access request whose grant ends now (req_…)." };
        var by = new Option<string>("--as") { Description = "Who revokes (default: the OS user).", DefaultValueFactory = _ => Environment.UserName };
        var command = new Command("revoke", "End a time-boxed grant now: the agent's next call is judged without it.") { id, config, by };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (policy, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            await using var notifier = new CliNotifier(policy.Approvals.Webhook);
            var message = ApprovalsCommand.Done(await ApprovalsCommand.Desk(policy, state, notifier).RevokeAsync(parse.GetValue(id)!, parse.GetValue(by)!, "cli", cancellationToken));
            Console.Out.WriteLine(Output.Printable(message));
            return 0;
        }));
        return command;
    }
}
