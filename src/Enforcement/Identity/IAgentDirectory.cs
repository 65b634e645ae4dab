namespace Gatehouse.Enforcement.Identity;

/// <summary>Gateway-side agent status, shared by every instance on the same state store.</summary>
public interface IAgentDirectory
{
    /// <summary>True when an admin has disabled the agent; checked on every call.</summary>
    ValueTask<bool> IsDisabledAsync(string agent, CancellationToken cancellationToken);

    ValueTask SetDisabledAsync(string agent, bool disabled, string changedBy, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<AgentStatus>> ListAsync(CancellationToken cancellationToken);
}

/// <summary>An agent the gateway has seen or an admin has acted on.</summary>
public sealed record AgentStatus(string Agent, bool Disabled, DateTimeOffset? LastSeen, long Calls, long Denials);
