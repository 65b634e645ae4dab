namespace Gatehouse.Enforcement.Identity;

/// <summary>The Identify stage: verifies the token and refuses agents an admin has disabled.</summary>
public sealed class Identifier(TokenValidator tokens, IAgentDirectory agents)
{
    public async ValueTask<IdentityResult> IdentifyAsync(string? token, CancellationToken cancellationToken)
    {
        var result = await tokens.ValidateAsync(token, cancellationToken).ConfigureAwait(false);
        return result.Identity is { } identity ? await CheckSwitchesAsync(identity, cancellationToken).ConfigureAwait(false) ?? result : result;
    }

    /// <summary>The refusal for an identity an admin has disabled (by agent, subject, client or token id); null when none is.</summary>
    public async ValueTask<IdentityResult?> CheckSwitchesAsync(AgentIdentity identity, CancellationToken cancellationToken)
    {
        var key = await StateUnavailableException.GuardAsync(
            "read whether this agent has been disabled", () => agents.FindDisabledAsync(identity.SwitchKeys, cancellationToken)).ConfigureAwait(false);

        if (key is null)
        {
            return null;
        }

        var what = key == identity.Agent ? $"agent '{identity.Agent}'" : $"{AgentKeys.Describe(key)} (used by agent '{identity.Agent}')";
        return IdentityResult.Refused("identity.agent_disabled", $"{what} has been disabled by an admin; nothing runs until an admin enables it again") with { Identity = null, RefusedIdentity = identity };
    }
}
