using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Enforcement.Identity;

/// <summary>
/// Disabling and enabling agents, from any channel (CLI, web console): the switch every gateway instance reads on the agent's
/// next call, and an audit record of who flipped it, when and through what.
/// </summary>
public sealed class AgentSwitchboard(IAgentDirectory directory, IAuditStore audit, TimeProvider time)
{
    /// <param name="agent">An agent name, or a subject, client or token key from <see cref="AgentKeys"/>.</param>
    public async Task<string> SetAsync(string agent, bool disable, string who, string channel, CancellationToken cancellationToken)
    {
        await directory.SetDisabledAsync(agent, disable, who, cancellationToken).ConfigureAwait(false);
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
