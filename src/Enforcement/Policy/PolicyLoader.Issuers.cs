using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Reading the <c>issuers</c> section: who may sign tokens, for which audiences, with which keys and algorithms.</summary>
public static partial class PolicyLoader
{
    private static readonly string[] AsymmetricAlgorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

    private static readonly string[] SharedSecretAlgorithms = ["HS256", "HS384", "HS512"];

    private static List<IssuerConfig> ReadIssuers(YamlNodeReader reader, YamlNode node, string baseDir)
    {
        var result = new List<IssuerConfig>();
        var unsaid = new List<(YamlNode At, string What, string Key)>();
        foreach (var item in reader.Sequence(node, "issuers"))
        {
            var e = reader.Mapping(
                item, "an issuer", "issuer", "audience", "audiences", "dev_key_file", "jwks_file", "jwks_url", "discovery", "agent_claim", "groups_claim",
                "algorithms", "clock_skew", "require_type", "required_scopes", "delegation_claim", "shared_secret_env", "shared_secret_file", "key_refresh_interval", "key_max_age",
                "agents", "groups");
            var issuer = reader.String(e, "issuer", "issuer", requiredAt: item);
            var what = $"issuer '{issuer}'";
            var audiences = new List<string>();
            if (e.TryGetValue("audience", out var aud))
            {
                audiences.AddRange(reader.Strings(aud, $"{what}: audience"));
            }

            if (e.TryGetValue("audiences", out var auds))
            {
                audiences.AddRange(reader.Strings(auds, $"{what}: audiences"));
            }

            if (audiences.Count == 0)
            {
                reader.Error(item, $"{what}: an audience is required, so tokens minted for other services are refused.");
            }

            var secret = ReadSecret(reader, e, item, what, baseDir, "shared_secret_env", "shared_secret_file");
            var hasSecret = secret.EnvironmentVariable is not null || secret.FilePath is not null;
            var keys = hasSecret ? new IssuerKeySource(null, null, null, null) : ReadKeySource(reader, e, item, what, baseDir);
            var algorithms = e.TryGetValue("algorithms", out var algs) ? reader.Strings(algs, $"{what}: algorithms") : hasSecret ? ["HS256"] : ["RS256"];
            CheckAlgorithms(reader, algs ?? item, what, algorithms, hasSecret, e.ContainsKey("dev_key_file") || e.ContainsKey("jwks_file") || e.ContainsKey("jwks_url") || e.ContainsKey("discovery"));
            var skew = e.TryGetValue("clock_skew", out var sk) ? reader.Duration(sk, $"{what}: clock_skew", TimeSpan.Zero, TimeSpan.FromMinutes(5)) : TimeSpan.FromSeconds(30);
            var agents = ReadAllowed(reader, e, "agents", what);
            var groups = ReadAllowed(reader, e, "groups", what);
            unsaid.AddRange(new[] { ("agents", agents.Said), ("groups", groups.Said) }.Where(k => !k.Said).Select(k => (item, what, k.Item1)));
            if (issuer is not null && keys is not null)
            {
                result.Add(new IssuerConfig(
                    issuer,
                    audiences,
                    keys,
                    reader.String(e, "agent_claim", $"{what}: agent_claim") ?? "sub",
                    reader.String(e, "groups_claim", $"{what}: groups_claim") ?? "groups",
                    algorithms,
                    skew)
                {
                    RequiredType = reader.String(e, "require_type", $"{what}: require_type"),
                    RequiredScopes = e.TryGetValue("required_scopes", out var scopes) ? reader.Strings(scopes, $"{what}: required_scopes") : [],
                    DelegationClaim = reader.String(e, "delegation_claim", $"{what}: delegation_claim") ?? "act",
                    SharedSecret = secret,
                    KeyRefreshInterval = e.TryGetValue("key_refresh_interval", out var refresh)
                        ? reader.Duration(refresh, $"{what}: key_refresh_interval", TimeSpan.FromSeconds(1), TimeSpan.FromDays(1))
                        : TimeSpan.FromSeconds(30),
                    KeyMaxAge = e.TryGetValue("key_max_age", out var maxAge)
                        ? reader.Duration(maxAge, $"{what}: key_max_age", TimeSpan.FromMinutes(5), TimeSpan.FromDays(1))
                        : TimeSpan.FromHours(1),
                    Agents = agents.Names,
                    Groups = groups.Names,
                });
            }
        }

        if (result.Count > 1)
        {
            foreach (var (at, what, key) in unsaid)
            {
                reader.Error(at, key == "agents"
                    ? $"{what}: agents is required when more than one issuer is trusted: list the agents this issuer may sign tokens for, or write 'agents: any'. Agents are known by name, so otherwise one issuer (or whoever holds a shared secret) could sign a token naming another issuer's agent and take its grants."
                    : $"{what}: groups is required when more than one issuer is trusted: list the groups its tokens may carry (others are ignored), or write 'groups: any'. Otherwise one issuer could put its tokens in a group another issuer's people belong to and take that group's grants.");
            }
        }

        foreach (var dup in result.GroupBy(r => r.Issuer, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            reader.Error(node, $"issuer '{dup.Key}' is listed more than once.");
        }

        return result;
    }

    // "any", or the names allowed. Absent means any too, which the caller refuses when several issuers are trusted.
    private static (bool Said, IReadOnlyList<string>? Names) ReadAllowed(YamlNodeReader reader, Dictionary<string, YamlNode> e, string key, string what) =>
        !e.TryGetValue(key, out var node) ? (false, null)
        : node is YamlScalarNode { Value: "any" } ? (true, null)
        : (true, reader.Strings(node, $"{what}: {key}"));

    // Asymmetric algorithms by default; HS* only with a configured shared secret, and never mixed with published keys (a
    // public key must never be usable as an HMAC secret). "none" and EdDSA are refused by name.
    private static void CheckAlgorithms(YamlNodeReader reader, YamlNode at, string what, IReadOnlyList<string> algorithms, bool hasSecret, bool hasKeys)
    {
        if (hasSecret && hasKeys)
        {
            reader.Error(at, $"{what}: a shared secret (HS*) and published keys cannot be combined; use one issuer entry for each.");
        }

        if (algorithms.Count == 0)
        {
            // The token library reads an empty list as "any algorithm".
            reader.Error(at, $"{what}: algorithms is empty, which would accept any algorithm the keys can verify; name the ones the issuer signs with.");
        }

        foreach (var alg in algorithms)
        {
            var problem = alg switch
            {
                _ when alg.Equals("none", StringComparison.OrdinalIgnoreCase) => "'none' means unsigned tokens and is never accepted",
                "EdDSA" => "EdDSA is not supported by the gateway's JWT library (Microsoft.IdentityModel); use ES256 or RS256",
                _ when SharedSecretAlgorithms.Contains(alg) && !hasSecret => $"{alg} needs shared_secret_env or shared_secret_file",
                _ when AsymmetricAlgorithms.Contains(alg) && hasSecret => $"{alg} needs published keys, not a shared secret",
                _ when !SharedSecretAlgorithms.Contains(alg) && !AsymmetricAlgorithms.Contains(alg) => $"it is not known; use one of {string.Join(", ", AsymmetricAlgorithms)} (or {string.Join(", ", SharedSecretAlgorithms)} with a shared secret)",
                _ => null,
            };
            if (problem is not null)
            {
                reader.Error(at, $"{what}: algorithm '{alg}' is not allowed: {problem}.");
            }
        }
    }

    private static readonly string[] Tools = ["query", "describe_schema", "request_access"];

    private static Dictionary<string, IReadOnlyList<string>> ReadToolScopes(YamlNodeReader reader, YamlNode node)
    {
        var result = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (tool, scopes) in reader.Mapping(node, "gateway.tool_scopes", Tools))
        {
            result[tool] = reader.Strings(scopes, $"gateway.tool_scopes: {tool}");
        }

        return result;
    }

    private static IssuerKeySource? ReadKeySource(YamlNodeReader reader, Dictionary<string, YamlNode> e, YamlNode at, string what, string baseDir)
    {
        var dev = reader.String(e, "dev_key_file", $"{what}: dev_key_file");
        var jwksFile = reader.String(e, "jwks_file", $"{what}: jwks_file");
        var jwksUrl = ReadUri(reader, e, "jwks_url", what);
        var discovery = ReadUri(reader, e, "discovery", what);
        var count = new object?[] { dev, jwksFile, jwksUrl, discovery }.Count(x => x is not null);
        if (count != 1)
        {
            reader.Error(at, $"{what}: set exactly one of dev_key_file, jwks_file, jwks_url or discovery (found {count}).");
            return null;
        }

        return new IssuerKeySource(
            dev is null ? null : Path.GetFullPath(dev, baseDir),
            jwksFile is null ? null : Path.GetFullPath(jwksFile, baseDir),
            jwksUrl,
            discovery);
    }
}
