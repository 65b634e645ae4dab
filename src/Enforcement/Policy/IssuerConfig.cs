namespace Gatehouse.Enforcement.Policy;

/// <summary>A trusted token issuer and how to read identities out of its tokens.</summary>
public sealed record IssuerConfig(
    string Issuer,
    IReadOnlyList<string> Audiences,
    IssuerKeySource Keys,
    string AgentClaim,
    string GroupsClaim,
    IReadOnlyList<string> Algorithms,
    TimeSpan ClockSkew);

/// <summary>Where an issuer's signing keys come from; exactly one is set.</summary>
public sealed record IssuerKeySource(string? DevKeyFile, string? JwksFile, Uri? JwksUrl, Uri? Discovery)
{
    public string Describe() =>
        DevKeyFile is not null ? $"dev key {DevKeyFile}"
        : JwksFile is not null ? $"JWKS file {JwksFile}"
        : JwksUrl is not null ? $"JWKS {JwksUrl}"
        : $"discovery {Discovery}";
}
