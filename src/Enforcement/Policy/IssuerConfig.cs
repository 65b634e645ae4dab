namespace Gatehouse.Enforcement.Policy;

/// <summary>A trusted token issuer and how to read identities out of its tokens.</summary>
public sealed record IssuerConfig(
    string Issuer,
    IReadOnlyList<string> Audiences,
    IssuerKeySource Keys,
    string AgentClaim,
    string GroupsClaim,
    IReadOnlyList<string> Algorithms,
    TimeSpan ClockSkew)
{
    /// <summary>The JWT header <c>typ</c> tokens must carry (for example <c>at+jwt</c>, RFC 9068); null accepts any.</summary>
    public string? RequiredType { get; init; }

    /// <summary>Scopes every token from this issuer must carry (claim <c>scope</c> or <c>scp</c>).</summary>
    public IReadOnlyList<string> RequiredScopes { get; init; } = [];

    /// <summary>
    /// The claim naming the human an agent acts for: <c>act</c> (RFC 8693, an object whose <c>sub</c> is the human and whose
    /// optional <c>groups</c> are theirs) by default, or a plain string claim such as <c>on_behalf_of</c>.
    /// </summary>
    public string DelegationClaim { get; init; } = "act";

    /// <summary>The shared secret for HS256/384/512, the only way those algorithms are accepted.</summary>
    public SecretSource SharedSecret { get; init; } = SecretSource.None;

    /// <summary>
    /// The least time between two key refreshes forced by a token whose <c>kid</c> is unknown (a key rotation at the
    /// issuer); keys are also refreshed every <see cref="KeyMaxAge"/>. Limits how often a flood of bad tokens can make the
    /// gateway call the IdP.
    /// </summary>
    public TimeSpan KeyRefreshInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long fetched keys are used before they are fetched again (at least 5 minutes, the token library's floor): how long
    /// a key the IdP withdraws still verifies tokens, besides the 5 minutes a verified token is trusted.
    /// </summary>
    public TimeSpan KeyMaxAge { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The agents this issuer may name; a token naming another is refused. Null: any (the policy must say so when it trusts
    /// more than one issuer, or one issuer could sign a token naming another's agent and take its grants).
    /// </summary>
    public IReadOnlyList<string>? Agents { get; init; }

    /// <summary>The groups this issuer's tokens may carry; others are ignored. Null: any (said outright when several issuers are trusted).</summary>
    public IReadOnlyList<string>? Groups { get; init; }

    /// <summary>Whether this issuer may name <paramref name="agent"/>.</summary>
    public bool MayName(string agent) => Agents is null || Agents.Contains(agent, StringComparer.Ordinal);

    /// <summary>Whether a token from this issuer may put its bearer in <paramref name="group"/>.</summary>
    public bool MayGroup(string group) => Groups is null || Groups.Contains(group, StringComparer.Ordinal);
}

/// <summary>Where an issuer's signing keys come from: exactly one is set, or none for an issuer with a shared secret (HS*).</summary>
public sealed record IssuerKeySource(string? DevKeyFile, string? JwksFile, Uri? JwksUrl, Uri? Discovery)
{
    public string Describe() =>
        DevKeyFile is not null ? $"dev key {DevKeyFile}"
        : JwksFile is not null ? $"JWKS file {JwksFile}"
        : JwksUrl is not null ? $"JWKS {JwksUrl}"
        : Discovery is not null ? $"discovery {Discovery}"
        : "a shared secret";
}
