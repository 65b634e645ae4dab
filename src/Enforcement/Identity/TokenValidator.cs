using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Gatehouse.Enforcement.Policy;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.Enforcement.Identity;

/// <summary>Verifies agent tokens against the trusted issuers; successful results are cached until the token expires.</summary>
public sealed class TokenValidator
{
    /// <summary>Tokens larger than this are refused before any parsing.</summary>
    public const int MaxTokenLength = 16 * 1024;

    private const int MaxCachedTokens = 10_000;

    private readonly JsonWebTokenHandler _handler = new() { MaximumTokenSizeInBytes = MaxTokenLength };
    private readonly Dictionary<string, (IssuerConfig Config, TokenValidationParameters Parameters, IssuerKeys.KeyFile? KeyFile)> _issuers;

    // Each verified token, with its issuer's key file (null for keys not kept in one), the generation it was verified under,
    // and until when it is trusted without verifying it again.
    private readonly ConcurrentDictionary<string, (AgentIdentity Identity, IssuerKeys.KeyFile? KeyFile, int Keys, DateTimeOffset Until)> _cache = new(StringComparer.Ordinal);

    /// <summary>
    /// How long a verified token is trusted before it is verified again. Keys fetched from a JWKS URL or discovery have no
    /// generation to compare: without this, a token verified under a key the IdP has since withdrawn (a leaked one) went on
    /// being trusted until its own expiry, which its signer chose.
    /// </summary>
    public static readonly TimeSpan ReverifyAfter = TimeSpan.FromMinutes(5);
    private readonly TimeProvider _time;
    private readonly KeyRotation _rotation;

    public TokenValidator(IReadOnlyList<IssuerConfig> issuers, TimeProvider time)
    {
        _time = time;
        _rotation = new KeyRotation(time);
        _issuers = issuers.ToDictionary(
            i => i.Issuer,
            i =>
            {
                var (parameters, file) = IssuerKeys.Create(i, time);
                return (i, parameters, file);
            },
            StringComparer.Ordinal);
    }

    public async ValueTask<IdentityResult> ValidateAsync(string? token, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(token))
        {
            return IdentityResult.Refused("identity.missing_token", "no agent token was presented; stdio reads it from GATEHOUSE_TOKEN or --token-file, HTTP from 'Authorization: Bearer <token>'");
        }

        if (token.Length > MaxTokenLength)
        {
            return IdentityResult.Refused("identity.malformed_token", $"the token is {token.Length} characters long; the limit is {MaxTokenLength}");
        }

        var cacheKey = TokenHash(token);
        var now = _time.GetUtcNow();
        if (_cache.TryGetValue(cacheKey, out var cached))
        {
            // Verified under keys still in force: a key file rewritten since (a rotation, a leaked key removed) means again.
            if (cached.Until > now && (cached.KeyFile is null || cached.KeyFile.Generation == cached.Keys))
            {
                return IdentityResult.Verified(cached.Identity);
            }

            _cache.TryRemove(cacheKey, out _);
        }

        JsonWebToken unverified;
        try
        {
            unverified = _handler.ReadJsonWebToken(token);
        }
        catch (ArgumentException)
        {
            return IdentityResult.Refused("identity.malformed_token", "the token is not a well-formed JWT (header.payload.signature, base64url)");
        }

        if (!_issuers.TryGetValue(unverified.Issuer ?? "", out var issuer))
        {
            return IdentityResult.Refused("identity.untrusted_issuer", $"tokens from issuer '{Printable(unverified.Issuer)}' are not trusted by this gateway");
        }

        if (issuer.Parameters.ConfigurationManager is { } fetched && await KeysUnavailableAsync(fetched, issuer.Config, cancellationToken).ConfigureAwait(false) is { } unavailable)
        {
            return unavailable;
        }

        var keys = issuer.KeyFile?.Generation ?? 0;
        var result = await _handler.ValidateTokenAsync(token, issuer.Parameters).ConfigureAwait(false);
        if (result.Exception is SecurityTokenSignatureKeyNotFoundException && await _rotation.RefreshAsync(issuer.Config, issuer.Parameters, unverified.Kid, cancellationToken).ConfigureAwait(false))
        {
            result = await _handler.ValidateTokenAsync(token, issuer.Parameters).ConfigureAwait(false);
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (!result.IsValid)
        {
            return Refusal(result.Exception, issuer.Config);
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        var agent = ClaimText(jwt, issuer.Config.AgentClaim);
        if (string.IsNullOrWhiteSpace(agent))
        {
            return IdentityResult.Refused("identity.missing_agent_claim", $"the token has no '{issuer.Config.AgentClaim}' claim naming the agent");
        }

        if (AgentKeys.AgentNameProblem(agent) is { } problem)
        {
            return IdentityResult.Refused("identity.agent_name_invalid", $"the agent name in the token's '{issuer.Config.AgentClaim}' claim {problem}; ask its issuer for a token with a plain name");
        }

        if (!issuer.Config.MayName(agent))
        {
            return IdentityResult.Refused("identity.agent_not_from_issuer", $"issuer '{issuer.Config.Issuer}' may not sign tokens for agent '{Printable(agent)}': the policy lists the agents each issuer may name (issuers: agents)");
        }

        var scopes = Scopes(jwt);
        if (issuer.Config.RequiredScopes.Except(scopes, StringComparer.Ordinal).ToList() is { Count: > 0 } missing)
        {
            return IdentityResult.Refused("identity.insufficient_scope", $"the token lacks the scope(s) {string.Join(", ", missing)} that issuer '{issuer.Config.Issuer}' tokens need here; ask its issuer for a token with them");
        }

        var (delegatedBy, delegatorGroups, shapeProblem) = Delegation(jwt, issuer.Config.DelegationClaim);
        // The person an agent acts for is named to row-level security, to approvers, and in the rule that nobody approves
        // their own request: a name that reads as another's (or as nobody's) would be taken for that person.
        if ((shapeProblem ?? (delegatedBy is null ? null : AgentKeys.NameProblem(delegatedBy))) is { } delegationProblem)
        {
            return IdentityResult.Refused("identity.delegation_invalid", $"the person the token says the agent acts for (its '{issuer.Config.DelegationClaim}' claim) {delegationProblem}; ask its issuer for a token with a plain name");
        }

        // A group whose name could pass for another's is left out, as one the issuer may not name is: fewer rights, not more.
        bool Usable(string group) => issuer.Config.MayGroup(group) && AgentKeys.NameProblem(group) is null;

        var identity = new AgentIdentity(
            agent,
            Groups(jwt, issuer.Config.GroupsClaim).Where(Usable).ToList(),
            issuer.Config.Issuer,
            jwt.Subject ?? agent,
            string.IsNullOrEmpty(jwt.Id) ? null : jwt.Id,
            // An expiry at the end of time (which the library clamps to DateTime.MaxValue) has no room for the skew.
            jwt.ValidTo >= DateTime.MaxValue - issuer.Config.ClockSkew ? DateTimeOffset.MaxValue : new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero).Add(issuer.Config.ClockSkew))
        {
            ClientId = ClaimText(jwt, "azp") ?? ClaimText(jwt, "client_id"),
            DelegatedBy = delegatedBy,
            DelegatorGroups = delegatorGroups.Where(Usable).ToList(),
            Scopes = scopes,
        };
        if (_cache.Count >= MaxCachedTokens)
        {
            Evict(now);
        }

        _cache[cacheKey] = (identity, issuer.KeyFile, keys, identity.ExpiresAt < now + ReverifyAfter ? identity.ExpiresAt : now + ReverifyAfter);
        return IdentityResult.Verified(identity);
    }

    /// <summary>
    /// Keys from a JWKS URL or discovery that were never fetched: said as such, with the reason when the gateway refused them
    /// itself. Once fetched, keys stay in use while the IdP cannot be reached, so this refuses only before the first success.
    /// </summary>
    private static async Task<IdentityResult?> KeysUnavailableAsync(BaseConfigurationManager manager, IssuerConfig issuer, CancellationToken cancellationToken)
    {
        try
        {
            await manager.GetBaseConfigurationAsync(cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (InvalidOperationException e)
        {
            var own = e.InnerException;
            while (own is not null and not IssuerKeysException)
            {
                own = own.InnerException;
            }

            var reason = own?.Message ?? $"{issuer.Keys.Describe()} did not answer with them";
            return IdentityResult.Refused("identity.issuer_keys_unavailable", $"the signing keys of issuer '{issuer.Issuer}' could not be fetched: {reason}; an admin should check the issuer's keys in the policy");
        }
    }

    private void Evict(DateTimeOffset now)
    {
        foreach (var (key, value) in _cache)
        {
            if (value.Until <= now)
            {
                _cache.TryRemove(key, out _);
            }
        }

        if (_cache.Count >= MaxCachedTokens)
        {
            _cache.Clear();
        }
    }

    private static IdentityResult Refusal(Exception? error, IssuerConfig issuer) => error switch
    {
        SecurityTokenExpiredException e => IdentityResult.Refused("identity.expired_token", $"the token expired at {e.Expires:u}; get a fresh token from its issuer"),
        SecurityTokenNotYetValidException e => IdentityResult.Refused("identity.token_not_yet_valid", $"the token is not valid before {e.NotBefore:u}"),
        SecurityTokenNoExpirationException => IdentityResult.Refused("identity.no_expiry", "the token has no expiry ('exp'); tokens must expire"),
        SecurityTokenInvalidAudienceException => IdentityResult.Refused("identity.wrong_audience", $"the token was issued for another audience; this gateway accepts {string.Join(", ", issuer.Audiences)}"),
        SecurityTokenInvalidIssuerException => IdentityResult.Refused("identity.untrusted_issuer", "the token's issuer is not trusted by this gateway"),
        SecurityTokenInvalidAlgorithmException => IdentityResult.Refused("identity.algorithm_not_allowed", $"the token's signing algorithm is not allowed; this issuer may use {string.Join(", ", issuer.Algorithms)}"),
        SecurityTokenSignatureKeyNotFoundException => IdentityResult.Refused("identity.bad_signature", "the token is signed with a key this issuer does not publish"),
        SecurityTokenInvalidSignatureException => IdentityResult.Refused("identity.bad_signature", "the token's signature does not verify"),
        SecurityTokenMalformedException => IdentityResult.Refused("identity.malformed_token", "the token is not a well-formed JWT"),
        SecurityTokenInvalidTypeException => IdentityResult.Refused("identity.wrong_token_type", $"the token's type (JWT header 'typ') is not '{issuer.RequiredType}': this gateway takes access tokens, not ID tokens or other JWTs"),
        _ => IdentityResult.Refused("identity.invalid_token", $"the token was refused ({error?.GetType().Name ?? "unknown reason"})"),
    };

    private static string? ClaimText(JsonWebToken jwt, string claim) =>
        jwt.TryGetClaim(claim, out var value) ? value.Value : null;

    // An array names one group per element, whatever it contains ("dba interns" is one group); a single string may list
    // groups separated by spaces or commas.
    private static List<string> Groups(JsonWebToken jwt, string claim)
    {
        // Asked for a string, the library hands an array back as its JSON text: so arrays first.
        IEnumerable<string> names =
            jwt.TryGetPayloadValue<System.Text.Json.JsonElement>(claim, out var value) && value.ValueKind == System.Text.Json.JsonValueKind.Array
                ? value.EnumerateArray().Where(g => g.ValueKind == System.Text.Json.JsonValueKind.String).Select(g => g.GetString()!)
            : jwt.TryGetPayloadValue<string>(claim, out var list) ? list.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries)
            : [];
        return names.Where(n => n.Length > 0).Distinct(StringComparer.Ordinal).ToList();
    }

    // "scope" is a space-separated string (RFC 9068); "scp" may be an array or a string.
    private static List<string> Scopes(JsonWebToken jwt) =>
        jwt.Claims
            .Where(c => c.Type is "scope" or "scp")
            .SelectMany(c => c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Distinct(StringComparer.Ordinal)
            .ToList();

    // RFC 8693: "act": {"sub": "alice", ...}; a configured claim may also be a plain string naming the human. A claim that is
    // there but names nobody readable (an object without a string "sub", a number, a list) says the agent acts for someone
    // without saying whom: it is refused, not read as "acts for nobody", which would drop the person from every rule about them.
    private static (string? Human, IReadOnlyList<string> Groups, string? Problem) Delegation(JsonWebToken jwt, string claim)
    {
        // The library hands objects and arrays back as JSON elements, strings as strings, and anything else only as claims.
        if (!jwt.TryGetPayloadValue<System.Text.Json.JsonElement>(claim, out var value))
        {
            // A JSON null says nobody, as a missing claim does.
            return !jwt.TryGetClaim(claim, out var plain) || plain.ValueType == JsonClaimValueTypes.JsonNull ? (null, [], null)
                : plain.ValueType == System.Security.Claims.ClaimValueTypes.String ? (plain.Value, [], null)
                : (null, [], "is neither a name nor an object naming the person in 'sub'");
        }

        if (value.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            return (null, [], "is neither a name nor an object naming the person in 'sub'");
        }

        if (!value.TryGetProperty("sub", out var sub) || sub.ValueKind != System.Text.Json.JsonValueKind.String)
        {
            return (null, [], "has no 'sub' naming the person (RFC 8693)");
        }

        var groups = value.TryGetProperty("groups", out var list) && list.ValueKind == System.Text.Json.JsonValueKind.Array
            ? list.EnumerateArray().Where(g => g.ValueKind == System.Text.Json.JsonValueKind.String).Select(g => g.GetString()!).ToList()
            : [];
        return (sub.GetString(), groups, null);
    }

    internal static string Printable(string? text) =>
        text is null ? "(none)" : text.Length > 100 ? text[..100] + "…" : text;

    /// <summary>
    /// SHA-256 of the token, in lowercase hex: what the cache keys on (it never holds a credential) and what an HTTP session
    /// id is cut from. Tokens are encoded on the stack when small, as they nearly always are, and otherwise into a pooled
    /// buffer wiped before return.
    /// </summary>
    public static string TokenHash(string token)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var length = Encoding.UTF8.GetByteCount(token);
        if (length <= 4096)
        {
            Span<byte> utf8 = stackalloc byte[length];
            Encoding.UTF8.GetBytes(token, utf8);
            SHA256.HashData(utf8, hash);
        }
        else
        {
            var rented = ArrayPool<byte>.Shared.Rent(length);
            try
            {
                var written = Encoding.UTF8.GetBytes(token, rented);
                SHA256.HashData(rented.AsSpan(0, written), hash);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(rented.AsSpan(0, length));
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        return Convert.ToHexStringLower(hash);
    }
}
