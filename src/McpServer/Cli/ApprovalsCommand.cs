using System.CommandLine;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse approvals list|approve|deny</c>: decide agents' access requests.</summary>
public static class ApprovalsCommand
{
    public static Command Create() => new("approvals", "Review and decide agents' access requests.") { List(), Decide("approve", true), Decide("deny", false) };

    private static Command List()
    {
        var config = CliApp.ConfigOption();
        var all = new Option<bool>("--all") { Description = "Include decided and expired requests, not only pending ones." };
        var json = CliApp.JsonOption();
        var command = new Command("list", "List access requests (pending ones by default).") { config, all, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var requests = await state.ListAsync(parse.GetValue(all) ? null : AccessRequestStatus.Pending, DateTimeOffset.UtcNow, cancellationToken);
            if (parse.GetValue(json))
            {
                Output.WriteJson(requests.Select(r => new
                {
                    r.Id,
                    r.Agent,
                    r.Connection,
                    Tables = r.Tables.Select(t => t.ToString()),
                    Access = r.Access.ToPolicyString(),
                    r.Reason,
                    Duration = Durations.Format(r.Duration),
                    r.Status,
                    r.CreatedAt,
                    r.DecidedAt,
                    r.DecidedBy,
                    r.DecisionNote,
                    r.GrantExpiresAt,
                }));
                return 0;
            }

            Output.WriteTable(
                ["ID", "CREATED", "AGENT", "CONNECTION", "ACCESS", "TABLES", "FOR", "STATUS", "REASON"],
                requests.Select(r => (IReadOnlyList<string>)[r.Id, Output.Time(r.CreatedAt), r.Agent, r.Connection, r.Access.ToPolicyString(), string.Join(",", r.Tables), Durations.Format(r.Duration), r.Status.ToString(), Output.Clip(r.Reason, 60)]));
            return 0;
        }));
        return command;
    }

    private static Command Decide(string verb, bool approve)
    {
        var config = CliApp.ConfigOption();
        var id = new Argument<string>("id") { Description = "The request id (req_...)." };
        var reason = new Option<string?>("--reason") { Description = "Why, recorded with the decision." };
        var approver = new Option<string>("--as") { Description = "Who decides (default: the OS user).", DefaultValueFactory = _ => Environment.UserName };
        var json = CliApp.JsonOption();
        var command = new Command(verb, approve ? "Approve a pending request: the agent gets the access for the requested duration." : "Deny a pending request.")
        {
            id, config, reason, approver, json,
        };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadAsync(parse.GetValue(config)!, cancellationToken);
            var now = DateTimeOffset.UtcNow;
            var requestId = parse.GetValue(id)!;
            var who = parse.GetValue(approver)!;
            var request = await state.GetAsync(requestId, now, cancellationToken) ?? throw new CliException($"no access request with id '{requestId}'", refused: true);
            if (request.RefuseApprover(who) is { } refusal)
            {
                throw new CliException(refusal, refused: true);
            }

            if (!await state.DecideAsync(requestId, approve, who, parse.GetValue(reason), now, cancellationToken))
            {
                throw new CliException($"request {requestId} is {request.Status.ToString().ToLowerInvariant()}, not pending; nothing changed", refused: true);
            }

            var decided = (await state.GetAsync(requestId, now, cancellationToken))!;
            if (parse.GetValue(json))
            {
                Output.WriteJson(new { decided.Id, decided.Status, decided.DecidedBy, decided.GrantExpiresAt });
            }
            else
            {
                Console.Out.WriteLine(approve
                    ? $"Approved {decided.Id}: {decided.Agent} may {decided.Access.ToPolicyString()} {string.Join(", ", decided.Tables)} on {decided.Connection} until {Output.Time(decided.GrantExpiresAt)}."
                    : $"Denied {decided.Id}.");
            }

            return 0;
        }));
        return command;
    }
}
