namespace Gatehouse.Enforcement.Policy;

/// <summary>
/// The admin HTTP API: tokens from the trusted issuers, but minted for <see cref="Audience"/>, which no agent token carries;
/// the token's agent claim must name one of <see cref="Users"/> or its groups include one of <see cref="Groups"/>.
/// </summary>
public sealed record AdminSettings(string Audience, IReadOnlyList<string> Users, IReadOnlyList<string> Groups)
{
    /// <summary>
    /// The issuers whose tokens may open the admin API: named in the policy, or the only trusted issuer when it signs with
    /// its own key. Admins are known by name, so any issuer allowed here could mint an admin's.
    /// </summary>
    public IReadOnlyList<string> Issuers { get; init; } = [];

    /// <summary>Whether a verified admin-audience identity may use the admin API.</summary>
    public bool Admits(string name, IReadOnlyList<string> groups) => Users.Contains(name) || groups.Any(g => Groups.Contains(g));
}
