using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Enforcement.Identity;

/// <summary>
/// Disabling and enabling agents, from any channel (CLI, web console): the switch every gateway instance reads on the agent's
/// next call, and an audit record of who flipped it, when and through what.
/// </summary>
public sealed class AgentSwitchboard(IAgentDirectory directory, IAuditStore audit, TimeProvider time)
{
    /// <summary>
    /// Why disabling the agent named <paramref name="name"/> is refused, or null: the gateway refuses every token carrying a
    /// name <see cref="AgentKeys.AgentNameProblem"/> objects to, so the switch would cut off nothing while reported done.
    /// </summary>
    public static string? RefuseDisabling(string name) => AgentKeys.AgentNameProblem(name) is { } problem
        ? $"the agent name '{name}' {problem}; the gateway refuses every token carrying such a name, so disabling it would cut off nothing; check the name against the agents list"
        : null;

    /// <param name="agent">An agent name, or a subject, client or token key from <see cref="AgentKeys"/>.</param>
    public async Task<string> SetAsync(string agent, bool disable, string who, string channel, CancellationToken cancellationToken)
    {
        // Not cancellable once sent: a switch stored and then cancelled would be in force with no record of who flipped it.
        cancellationToken.ThrowIfCancellationRequested();
        await directory.SetDisabledAsync(agent, disable, who, CancellationToken.None).ConfigureAwait(false);
        var verb = disable ? "disable" : "enable";
        var described = AgentKeys.Describe(agent);
        var what = char.ToUpperInvariant(described[0]) + described[1..];
        var message = disable
            ? $"{what} is disabled: its next call is refused, on every gateway sharing this state."
            : $"{what} is enabled again.";
        await audit.RecordAsync(time.GetUtcNow(), $"agents {verb}", channel, who, agent, done: true, $"agent.{verb}", message).ConfigureAwait(false);
        return message;
    }
}
