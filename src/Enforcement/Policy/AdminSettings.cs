namespace Gatehouse.Enforcement.Policy;

/// <summary>
/// The admin HTTP API: tokens from the trusted issuers, but minted for <see cref="Audience"/>, which no agent token carries;
/// the token's agent claim must name one of <see cref="Users"/> or its groups include one of <see cref="Groups"/>.
/// </summary>
public sealed record AdminSettings(string Audience, IReadOnlyList<string> Users, IReadOnlyList<string> Groups)
{
    /// <summary>
    /// The issuers whose tokens may open the admin API. By default every trusted issuer but those that sign with a shared
    /// secret (HS*): whoever holds that secret (an agent platform) could mint any name, an admin's included.
    /// </summary>
    public IReadOnlyList<string> Issuers { get; init; } = [];

    /// <summary>Whether a verified admin-audience identity may use the admin API.</summary>
    public bool Admits(string name, IReadOnlyList<string> groups) => Users.Contains(name) || groups.Any(g => Groups.Contains(g));
}
