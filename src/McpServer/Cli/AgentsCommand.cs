using System.CommandLine;
using Gatehouse.Enforcement.Identity;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse agents list|disable|enable</c>: see agents and revoke them at the gateway.</summary>
public static class AgentsCommand
{
    public static Command Create() => new("agents", "List agents and disable (revoke) or enable them.") { List(), Toggle("disable", true), Toggle("enable", false) };

    private static Command List()
    {
        var config = CliApp.ConfigOption();
        var json = CliApp.JsonOption();
        var command = new Command("list", "List agents with their calls, denials and last activity.") { config, json };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var (_, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var agents = await state.AgentsAsync(cancellationToken);
            if (parse.GetValue(json))
            {
                Output.WriteJson(agents);
                return 0;
            }

            Output.WriteTable(
                ["AGENT", "STATUS", "FIRST SEEN", "LAST SEEN", "CALLS", "DENIALS", "IDENTITY FROM"],
                agents.Select(a => (IReadOnlyList<string>)[a.Agent, a.Disabled ? "disabled" : "enabled", Output.Time(a.FirstSeen), Output.Time(a.LastSeen), a.Calls.ToString(), a.Denials.ToString(), a.Issuers.Count == 0 ? "-" : string.Join(", ", a.Issuers)]));
            return 0;
        }));
        return command;
    }

    private static Command Toggle(string verb, bool disable)
    {
        var config = CliApp.ConfigOption();
        var agent = new Argument<string?>("agent") { Description = "The agent name (the token's agent claim).", Arity = ArgumentArity.ZeroOrOne };
        var subject = new Option<string?>("--subject") { Description = "Instead of a name: every token with this subject ('sub')." };
        var client = new Option<string?>("--client-id") { Description = "Instead of a name: every token issued to this OAuth client ('azp' or 'client_id')." };
        var jti = new Option<string?>("--jti") { Description = "Instead of a name: the one token with this id ('jti')." };
        var by = new Option<string>("--as") { Description = "Who makes the change (default: the OS user).", DefaultValueFactory = _ => Environment.UserName };
        var command = new Command(verb, disable
            ? "Disable an agent (by name, subject, client id or token id): its next call is refused, on every gateway sharing this state."
            : "Enable again what was disabled.") { agent, subject, client, jti, config, by };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            var name = parse.GetValue(agent)?.Trim();
            if (disable && name is not null && AgentSwitchboard.RefuseDisabling(name) is { } refused)
            {
                throw new CliException(refused);
            }

            string?[] given = [name, Key(parse.GetValue(subject), AgentKeys.Subject), Key(parse.GetValue(client), AgentKeys.Client), Key(parse.GetValue(jti), AgentKeys.TokenId)];
            if (given.Count(g => g is not null) != 1)
            {
                throw new CliException($"name exactly one of: an agent, --subject, --client-id or --jti (e.g. gatehouse agents {verb} analyst)");
            }

            var (policy, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var switchboard = new AgentSwitchboard(state.Store, CliApp.Recorder(policy, state.Audit), TimeProvider.System);
            var key = given.First(g => g is not null)!;
            Console.Out.WriteLine(await switchboard.SetAsync(key, disable, parse.GetValue(by)!, "cli", cancellationToken));
            foreach (var note in await NotesAsync(key, disable, policy, state, cancellationToken))
            {
                Console.Error.WriteLine($"note: {note}");
            }

            return 0;
        }));
        return command;
    }

    // What the switch may not have done: an agent name matched exactly, case included, that nothing knows (a typo switches
    // off no one), and, on enabling, the other switches still on, which refuse every token carrying them.
    private static async Task<IReadOnlyList<string>> NotesAsync(string key, bool disable, Enforcement.Policy.GatewayPolicy policy, Hosting.GatewayState state, CancellationToken cancellationToken)
    {
        var notes = new List<string>();
        var agents = await state.AgentsAsync(cancellationToken);
        if (!AgentKeys.IsKey(key) && !policy.Agents.ContainsKey(key) && !agents.Any(a => a.Agent == key && a.Calls > 0))
        {
            var alike = policy.Agents.Keys.Concat(agents.Select(a => a.Agent)).Where(a => a != key && a.Equals(key, StringComparison.OrdinalIgnoreCase)).Distinct().ToList();
            notes.Add($"no agent named '{key}' is in the policy or has called yet; names match exactly, case included"
                + (alike.Count > 0 ? $" (did you mean {string.Join(" or ", alike.Select(a => $"'{a}'"))}?)" : ""));
        }

        if (!disable && agents.Where(a => a.Disabled && a.Agent != key && AgentKeys.IsKey(a.Agent)).Select(a => AgentKeys.Describe(a.Agent)).ToList() is { Count: > 0 } still)
        {
            notes.Add($"still disabled: {string.Join(", ", still)}; a token carrying any of these is refused whatever agent it names");
        }

        return notes;
    }

    private static string? Key(string? value, Func<string, string> key) => string.IsNullOrWhiteSpace(value) ? null : key(value.Trim());
}
