namespace Gatehouse.Enforcement.Identity;

/// <summary>The Identify stage: verifies the token and refuses agents an admin has disabled.</summary>
public sealed class Identifier(TokenValidator tokens, IAgentDirectory agents)
{
    public async ValueTask<IdentityResult> IdentifyAsync(string? token, CancellationToken cancellationToken)
    {
        var result = await tokens.ValidateAsync(token, cancellationToken).ConfigureAwait(false);
        if (result.Identity is { } identity && await agents.IsDisabledAsync(identity.Agent, cancellationToken).ConfigureAwait(false))
        {
            return IdentityResult.Refused("identity.agent_disabled", $"agent '{identity.Agent}' has been disabled by an admin") with { Identity = null };
        }

        return result;
    }
}
