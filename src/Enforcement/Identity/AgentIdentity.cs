namespace Gatehouse.Enforcement.Identity;

/// <summary>A verified caller: the agent a token names, its groups, and where the token came from.</summary>
public sealed record AgentIdentity(
    string Agent,
    IReadOnlyList<string> Groups,
    string Issuer,
    string Subject,
    string? TokenId,
    DateTimeOffset ExpiresAt);

/// <summary>The outcome of verifying a token: an identity, or the rule that refused it and why.</summary>
public sealed record IdentityResult(AgentIdentity? Identity, string Rule, string Reason)
{
    public static IdentityResult Verified(AgentIdentity identity) => new(identity, "identity.verified", "token verified");

    public static IdentityResult Refused(string rule, string reason) => new(null, rule, reason);
}
