using System.Security.Cryptography;
using System.Text;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.Tests.Enforcement.Identity;

public sealed partial class TokenValidatorTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-tokens-" + Guid.NewGuid().ToString("N"));
    private readonly IssuerConfig _issuer;
    private readonly RsaSecurityKey _key;
    private readonly TokenValidator _validator;

    public TokenValidatorTests()
    {
        Directory.CreateDirectory(_directory);
        _issuer = new IssuerConfig("gatehouse-dev", ["gatehouse"], new IssuerKeySource(Path.Combine(_directory, "dev.pem"), null, null, null), "sub", "groups", ["RS256"], TimeSpan.Zero);
        _key = DevIssuer.LoadOrCreateKey(_issuer.Keys.DevKeyFile!);
        _validator = new TokenValidator([_issuer], TimeProvider.System);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Mint(string agent = "analyst", TimeSpan? lifetime = null, DateTimeOffset? now = null, IssuerConfig? issuer = null, RsaSecurityKey? key = null) =>
        DevIssuer.Mint(issuer ?? _issuer, key ?? _key, agent, ["finance", "ops"], lifetime ?? TimeSpan.FromMinutes(5), now ?? DateTimeOffset.UtcNow);

    private async Task<IdentityResult> Validate(string? token) => await _validator.ValidateAsync(token, CancellationToken.None);

    [Fact]
    public async Task A_valid_token_names_the_agent_and_its_groups()
    {
        var result = await Validate(Mint());
        Assert.NotNull(result.Identity);
        Assert.Equal("analyst", result.Identity.Agent);
        Assert.Equal(["finance", "ops"], result.Identity.Groups);
        Assert.Equal("gatehouse-dev", result.Identity.Issuer);
        Assert.NotNull(result.Identity.TokenId);
    }

    [Fact]
    public void The_dev_key_file_is_readable_only_by_its_owner()
    {
        var mode = File.GetUnixFileMode(_issuer.Keys.DevKeyFile!);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
    }

    [Theory]
    [InlineData(null, "identity.missing_token")]
    [InlineData("", "identity.missing_token")]
    [InlineData("not-a-jwt", "identity.malformed_token")]
    [InlineData("a.b.c", "identity.malformed_token")]
    public async Task Missing_and_malformed_tokens_are_refused(string? token, string rule)
    {
        var result = await Validate(token);
        Assert.Null(result.Identity);
        Assert.Equal(rule, result.Rule);
    }

    [Fact]
    public async Task An_expired_token_is_refused_with_its_expiry()
    {
        var result = await Validate(Mint(lifetime: TimeSpan.FromMinutes(5), now: DateTimeOffset.UtcNow.AddHours(-1)));
        Assert.Equal("identity.expired_token", result.Rule);
        Assert.Contains("expired at", result.Reason);
    }

    [Fact]
    public async Task A_token_that_is_not_yet_valid_is_refused()
    {
        var result = await Validate(Mint(now: DateTimeOffset.UtcNow.AddHours(1)));
        Assert.Equal("identity.token_not_yet_valid", result.Rule);
    }

    [Fact]
    public async Task A_token_for_another_audience_is_refused()
    {
        var result = await Validate(Mint(issuer: _issuer with { Audiences = ["billing-api"] }));
        Assert.Equal("identity.wrong_audience", result.Rule);
        Assert.Contains("gatehouse", result.Reason);
    }

    [Theory]
    [InlineData("gatehouse/")]
    [InlineData("Gatehouse")]
    public async Task An_audience_is_matched_exactly_not_up_to_a_trailing_slash_or_case(string audience)
    {
        // The library's default ignores a trailing slash, while the policy keeps the admin audience apart from the agents'
        // by exact comparison: an agent token for "x" would have opened an admin API set to "x/".
        var result = await Validate(Mint(issuer: _issuer with { Audiences = [audience] }));
        Assert.Equal("identity.wrong_audience", result.Rule);
    }

    [Fact]
    public async Task A_token_from_an_untrusted_issuer_is_refused()
    {
        var result = await Validate(Mint(issuer: _issuer with { Issuer = "https://evil.example" }));
        Assert.Equal("identity.untrusted_issuer", result.Rule);
    }

    [Fact]
    public async Task A_token_signed_with_another_key_is_refused()
    {
        var otherKey = new RsaSecurityKey(RSA.Create(2048)) { KeyId = _key.KeyId };
        var result = await Validate(Mint(key: otherKey));
        Assert.Equal("identity.bad_signature", result.Rule);
    }

    [Fact]
    public async Task A_tampered_payload_is_refused()
    {
        var parts = Mint().Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("analyst", "admin0");
        var tampered = $"{parts[0]}.{Base64UrlEncoder.Encode(payload)}.{parts[2]}";
        var result = await Validate(tampered);
        Assert.Equal("identity.bad_signature", result.Rule);
    }

    [Fact]
    public async Task An_unsigned_alg_none_token_is_refused()
    {
        var header = Base64UrlEncoder.Encode("""{"alg":"none","typ":"JWT"}""");
        var exp = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
        var payload = Base64UrlEncoder.Encode($$"""{"iss":"gatehouse-dev","aud":"gatehouse","sub":"analyst","exp":{{exp}}}""");
        var result = await Validate($"{header}.{payload}.");
        Assert.Null(result.Identity);
        Assert.StartsWith("identity.", result.Rule);
        Assert.NotEqual("identity.verified", result.Rule);
    }

    [Fact]
    public async Task An_hs256_token_signed_with_a_guessable_secret_is_refused()
    {
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = "gatehouse-dev",
            Audience = "gatehouse",
            Expires = DateTime.UtcNow.AddMinutes(5),
            Claims = new Dictionary<string, object> { ["sub"] = "analyst" },
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(RandomNumberGenerator.GetBytes(32)), SecurityAlgorithms.HmacSha256),
        };
        var result = await Validate(new JsonWebTokenHandler().CreateToken(descriptor));
        Assert.Null(result.Identity);
    }

    [Fact]
    public async Task An_oversized_token_is_refused_before_parsing()
    {
        var result = await Validate(new string('a', TokenValidator.MaxTokenLength + 1));
        Assert.Equal("identity.malformed_token", result.Rule);
        Assert.Contains("limit", result.Reason);
    }

    [Theory]
    [InlineData("analyst ", "spaces at its start or end")]
    [InlineData("\tanalyst", "spaces at its start or end")]
    [InlineData("ana\u200Blyst", "control or invisible characters")]
    [InlineData("ana\u0007lyst", "control or invisible characters")]
    [InlineData("ana\u2028lyst", "control or invisible characters")]
    [InlineData("analyst\u034F", "control or invisible characters")]
    [InlineData("analyst\uFE0F", "control or invisible characters")]
    [InlineData("analys\u3164t", "control or invisible characters")]
    [InlineData("analyst\u2800", "control or invisible characters")]
    [InlineData("analyst\U000E0061", "control or invisible characters")]
    [InlineData("analyst\U000E0100", "control or invisible characters")]
    [InlineData("nightly  report", "a space other than one plain space")]
    [InlineData("nightly\u00A0report", "a space other than one plain space")]
    [InlineData("a\u2010\uFE0Fb", "control or invisible characters")]
    [InlineData("sub:alice", "begins like a subject, client or token switch")]
    [InlineData("jti:leaked-token-1", "begins like a subject, client or token switch")]
    public async Task An_agent_name_that_would_read_as_another_is_refused(string agent, string problem)
    {
        var result = await Validate(Mint(agent));

        Assert.Null(result.Identity);
        Assert.Equal("identity.agent_name_invalid", result.Rule);
        Assert.Contains(problem, result.Reason);
    }

    [Fact]
    public async Task An_agent_name_is_at_most_2048_bytes_and_may_hold_inner_spaces_and_joiners_in_words()
    {
        Assert.Equal("identity.agent_name_invalid", (await Validate(Mint(new string('a', 2049)))).Rule);
        Assert.Equal(new string('a', 2048), (await Validate(Mint(new string('a', 2048)))).Identity?.Agent);
        Assert.Equal("identity.agent_name_invalid", (await Validate(Mint(new string('ж', 1025)))).Rule);
        Assert.Equal("nightly report bot", (await Validate(Mint("nightly report bot"))).Identity?.Agent);
        Assert.Equal("spiffe://corp/ns/etl/sa/loader", (await Validate(Mint("spiffe://corp/ns/etl/sa/loader"))).Identity?.Agent);

        // A zero-width non-joiner inside a Persian word is writing; between ASCII letters it is disguise.
        Assert.Equal("گزارش\u200Cساز", (await Validate(Mint("گزارش\u200Cساز"))).Identity?.Agent);
        Assert.Equal("identity.agent_name_invalid", (await Validate(Mint("ana\u200Clyst"))).Rule);
        Assert.Equal("identity.agent_name_invalid", (await Validate(Mint("ив\u200Dан"))).Rule);
        Assert.Equal("bot-\u2764\uFE0F\u200D\U0001F525", (await Validate(Mint("bot-\u2764\uFE0F\u200D\U0001F525"))).Identity?.Agent);
    }

    [Fact]
    public async Task A_token_without_the_agent_claim_is_refused()
    {
        var expectsAzp = new TokenValidator([_issuer with { AgentClaim = "azp" }], TimeProvider.System);
        var result = await expectsAzp.ValidateAsync(Mint(), CancellationToken.None);
        Assert.Equal("identity.missing_agent_claim", result.Rule);
        Assert.Contains("'azp'", result.Reason);
    }

    [Fact]
    public async Task An_issuer_whose_keys_come_from_a_jwks_file_verifies_its_tokens()
    {
        var jwk = JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(_key.Rsa.ExportParameters(includePrivateParameters: false)) { KeyId = _key.KeyId });
        var jwksPath = Path.Combine(_directory, "jwks.json");
        File.WriteAllText(jwksPath, System.Text.Json.JsonSerializer.Serialize(new { keys = new[] { new { kty = jwk.Kty, kid = jwk.Kid, n = jwk.N, e = jwk.E, use = "sig", alg = "RS256" } } }));
        var fromFile = _issuer with { Keys = new IssuerKeySource(null, jwksPath, null, null) };
        var validator = new TokenValidator([fromFile], TimeProvider.System);
        Assert.Equal("analyst", (await validator.ValidateAsync(Mint(), CancellationToken.None)).Identity?.Agent);

        var stranger = new RsaSecurityKey(RSA.Create(2048)) { KeyId = "other" };
        Assert.Equal("identity.bad_signature", (await validator.ValidateAsync(Mint(key: stranger), CancellationToken.None)).Rule);
    }

    [Fact]
    public async Task A_cached_token_stops_working_when_it_expires()
    {
        // exp is in whole seconds, rounded down; the first check has a few seconds, then the test waits out the token's own exp.
        var token = Mint(lifetime: TimeSpan.FromSeconds(5));
        Assert.NotNull((await Validate(token)).Identity);
        await Task.Delay(new JsonWebToken(token).ValidTo - DateTime.UtcNow + TimeSpan.FromSeconds(0.5));
        Assert.Equal("identity.expired_token", (await Validate(token)).Rule);
    }
}
