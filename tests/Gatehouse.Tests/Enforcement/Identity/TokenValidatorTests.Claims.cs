using System.Security.Cryptography;
using System.Text;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.Tests.Enforcement.Identity;

/// <summary>The rest of the token attack matrix, and what a verified token says beyond the agent: type, scopes, client, delegation.</summary>
public sealed partial class TokenValidatorTests
{
    private string MintWith(IReadOnlyDictionary<string, object> claims, IssuerConfig? issuer = null) =>
        DevIssuer.Mint(issuer ?? _issuer, _key, "analyst", [], TimeSpan.FromMinutes(5), DateTimeOffset.UtcNow, claims);

    [Fact]
    public async Task An_hs256_token_whose_secret_is_the_issuers_public_key_is_refused()
    {
        // The classic key-confusion attack: HMAC keyed with the RSA public key the issuer publishes.
        var publicPem = Encoding.UTF8.GetBytes(_key.Rsa.ExportSubjectPublicKeyInfoPem());
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = "gatehouse-dev",
            Audience = "gatehouse",
            Expires = DateTime.UtcNow.AddMinutes(5),
            Claims = new Dictionary<string, object> { ["sub"] = "analyst" },
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(publicPem) { KeyId = _key.KeyId }, SecurityAlgorithms.HmacSha256),
        };
        var result = await Validate(new JsonWebTokenHandler().CreateToken(descriptor));
        Assert.Null(result.Identity);
        Assert.Contains(result.Rule, new[] { "identity.algorithm_not_allowed", "identity.bad_signature" });
    }

    [Fact]
    public async Task An_issuer_that_lists_its_agents_and_groups_names_no_other_agent_and_carries_no_other_group()
    {
        var listed = new TokenValidator([_issuer with { Agents = ["analyst"], Groups = ["finance"] }], TimeProvider.System);
        var named = await listed.ValidateAsync(Mint("analyst"), CancellationToken.None);
        Assert.Equal(["finance"], named.Identity!.Groups);

        var other = await listed.ValidateAsync(Mint("support-bot"), CancellationToken.None);
        Assert.Null(other.Identity);
        Assert.Equal("identity.agent_not_from_issuer", other.Rule);
        Assert.Contains("'gatehouse-dev' may not sign tokens for agent 'support-bot'", other.Reason, StringComparison.Ordinal);

        var delegated = await listed.ValidateAsync(
            MintWith(new Dictionary<string, object> { ["act"] = new Dictionary<string, object> { ["sub"] = "alice", ["groups"] = new[] { "finance", "dba" } } }), CancellationToken.None);
        Assert.Equal(["finance"], delegated.Identity!.DelegatorGroups);
    }

    [Theory]
    [InlineData("array", new[] { "dba interns", "finance" })]
    [InlineData("string", new[] { "dba", "interns", "finance" })]
    public async Task Group_names_in_an_array_are_kept_whole_and_a_single_string_is_a_list(string shape, string[] expected)
    {
        object groups = shape == "array" ? new[] { "dba interns", "finance" } : "dba interns,finance";
        var result = await Validate(MintWith(new Dictionary<string, object> { ["groups"] = groups }));
        Assert.Equal(expected, result.Identity!.Groups);
    }

    [Fact]
    public async Task A_group_whose_name_could_pass_for_another_is_left_out_of_the_identity()
    {
        // A comma is allowed (an LDAP DN names a group so); gatehouse.groups leaves such a group out instead.
        string[] groups = ["CN=Readers,OU=Groups,DC=corp", "ops ", "fin\u200Bance", "dba"];
        var claims = new Dictionary<string, object>
        {
            ["groups"] = groups,
            ["act"] = new Dictionary<string, object> { ["sub"] = "alice", ["groups"] = groups },
        };

        var result = await Validate(MintWith(claims));

        Assert.Equal(["CN=Readers,OU=Groups,DC=corp", "dba"], result.Identity!.Groups);
        Assert.Equal(["CN=Readers,OU=Groups,DC=corp", "dba"], result.Identity.DelegatorGroups);
    }

    [Fact]
    public async Task A_token_naming_an_unknown_key_id_is_refused()
    {
        var stranger = new RsaSecurityKey(RSA.Create(2048)) { KeyId = "not-published" };
        var result = await Validate(Mint(key: stranger));
        Assert.Equal("identity.bad_signature", result.Rule);
        Assert.Contains("does not publish", result.Reason);
    }

    [Fact]
    public async Task An_issuer_that_requires_access_tokens_refuses_another_token_type()
    {
        var strict = new TokenValidator([_issuer with { RequiredType = "at+jwt" }], TimeProvider.System);
        Assert.NotNull((await strict.ValidateAsync(Mint(), CancellationToken.None)).Identity);

        var idToken = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "gatehouse-dev",
            Audience = "gatehouse",
            Expires = DateTime.UtcNow.AddMinutes(5),
            Claims = new Dictionary<string, object> { ["sub"] = "analyst" },
            TokenType = "JWT",
            SigningCredentials = new SigningCredentials(_key, SecurityAlgorithms.RsaSha256),
        });
        var result = await strict.ValidateAsync(idToken, CancellationToken.None);
        Assert.Equal("identity.wrong_token_type", result.Rule);
    }

    [Fact]
    public async Task Required_scopes_are_checked_and_scopes_client_and_delegation_are_read()
    {
        var scoped = new TokenValidator([_issuer with { RequiredScopes = ["gatehouse.query"] }], TimeProvider.System);
        var missing = await scoped.ValidateAsync(MintWith(new Dictionary<string, object> { ["scope"] = "openid" }), CancellationToken.None);
        Assert.Equal("identity.insufficient_scope", missing.Rule);
        Assert.Contains("gatehouse.query", missing.Reason);

        var token = MintWith(new Dictionary<string, object>
        {
            ["scope"] = "gatehouse.query openid",
            ["azp"] = "reporting-app",
            ["act"] = new Dictionary<string, object> { ["sub"] = "alice@example.com", ["groups"] = new[] { "dba" } },
        });
        var identity = (await scoped.ValidateAsync(token, CancellationToken.None)).Identity!;
        Assert.Equal(["gatehouse.query", "openid"], identity.Scopes);
        Assert.Equal("reporting-app", identity.ClientId);
        Assert.Equal("alice@example.com", identity.DelegatedBy);
        Assert.Equal(["dba"], identity.DelegatorGroups);
        Assert.Contains("client:reporting-app", identity.SwitchKeys);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ceo\u200B")]
    [InlineData("ceo\u034F")]
    [InlineData(" ceo")]
    public async Task A_delegating_person_whose_name_would_read_as_another_or_nobody_is_refused(string name)
    {
        // Row-level security, approvers and the no-self-approval rule all take this name for a person.
        var result = await _validator.ValidateAsync(MintWith(new Dictionary<string, object> { ["act"] = new Dictionary<string, object> { ["sub"] = name } }), CancellationToken.None);

        Assert.Null(result.Identity);
        Assert.Equal("identity.delegation_invalid", result.Rule);
        Assert.Contains("'act' claim", result.Reason);
    }

    public static TheoryData<object> UnreadableDelegations => new()
    {
        new Dictionary<string, object> { ["client_id"] = "reporting-app" },
        new Dictionary<string, object> { ["sub"] = 7 },
        42,
        new[] { "alice" },
    };

    [Theory]
    [MemberData(nameof(UnreadableDelegations))]
    public async Task A_delegation_claim_that_names_nobody_readable_is_refused_rather_than_read_as_no_delegation(object act)
    {
        // Read as "acts for nobody", the person would drop out of row-level security, approvals and the no-self-approval rule.
        var result = await _validator.ValidateAsync(MintWith(new Dictionary<string, object> { ["act"] = act }), CancellationToken.None);

        Assert.Null(result.Identity);
        Assert.Equal("identity.delegation_invalid", result.Rule);
        Assert.Contains("'act' claim", result.Reason);
    }

    [Fact]
    public async Task A_token_expiring_at_the_end_of_time_verifies_instead_of_overflowing_its_clock_skew()
    {
        var now = DateTimeOffset.UtcNow;
        var lenient = new TokenValidator([_issuer with { ClockSkew = TimeSpan.FromMinutes(5) }], TimeProvider.System);
        var result = await lenient.ValidateAsync(DevIssuer.Mint(_issuer, _key, "analyst", [], DateTimeOffset.MaxValue - now - TimeSpan.FromSeconds(1), now), CancellationToken.None);
        Assert.Equal("analyst", result.Identity?.Agent);
        Assert.Equal(DateTimeOffset.MaxValue, result.Identity!.ExpiresAt);
    }

    [Fact]
    public async Task A_configured_on_behalf_of_claim_names_the_human()
    {
        var obo = new TokenValidator([_issuer with { DelegationClaim = "on_behalf_of" }], TimeProvider.System);
        var identity = (await obo.ValidateAsync(MintWith(new Dictionary<string, object> { ["on_behalf_of"] = "bob" }), CancellationToken.None)).Identity!;
        Assert.Equal("bob", identity.DelegatedBy);
        // A person id that reads as a date or a number is still the text it is, not a claim of another type.
        foreach (var id in new[] { "2024-01-01", "3.14", "1-2" })
        {
            Assert.Equal(id, (await obo.ValidateAsync(MintWith(new Dictionary<string, object> { ["on_behalf_of"] = id }), CancellationToken.None)).Identity?.DelegatedBy);
        }
        Assert.Equal("identity.delegation_invalid", (await obo.ValidateAsync(MintWith(new Dictionary<string, object> { ["on_behalf_of"] = " " }), CancellationToken.None)).Rule);
        Assert.Null((await obo.ValidateAsync(Mint(), CancellationToken.None)).Identity!.DelegatedBy);
    }

    [Fact]
    public async Task A_shared_secret_issuer_accepts_its_hs256_tokens_and_nothing_signed_otherwise()
    {
        var secretFile = Path.Combine(_directory, "hs.secret");
        File.WriteAllText(secretFile, Convert.ToHexString(RandomNumberGenerator.GetBytes(32)));
        var issuer = new IssuerConfig("hs-issuer", ["gatehouse"], new IssuerKeySource(null, null, null, null), "sub", "groups", ["HS256"], TimeSpan.Zero)
        {
            SharedSecret = new SecretSource(null, secretFile),
        };
        var validator = new TokenValidator([issuer], TimeProvider.System);
        string Sign(SigningCredentials credentials) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "hs-issuer",
            Audience = "gatehouse",
            Expires = DateTime.UtcNow.AddMinutes(5),
            Claims = new Dictionary<string, object> { ["sub"] = "batch-job" },
            SigningCredentials = credentials,
        });

        var good = await validator.ValidateAsync(Sign(new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(File.ReadAllText(secretFile))), SecurityAlgorithms.HmacSha256)), CancellationToken.None);
        Assert.Equal("batch-job", good.Identity?.Agent);
        var rsa = await validator.ValidateAsync(Sign(new SigningCredentials(_key, SecurityAlgorithms.RsaSha256)), CancellationToken.None);
        Assert.Null(rsa.Identity);
    }

    [Fact]
    public async Task A_shared_secret_rewritten_in_its_file_is_in_force_from_the_next_token_and_tokens_under_the_old_one_stop()
    {
        var secretFile = Path.Combine(_directory, "rotated.secret");
        var before = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        File.WriteAllText(secretFile, before + "\n");
        var issuer = new IssuerConfig("hs-issuer", ["gatehouse"], new IssuerKeySource(null, null, null, null), "sub", "groups", ["HS256"], TimeSpan.Zero)
        {
            SharedSecret = new SecretSource(null, secretFile),
        };
        var clock = new Gatehouse.Tests.Connectors.Audit.SteppedClock();
        var validator = new TokenValidator([issuer], clock);
        string Sign(string secret) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "hs-issuer",
            Audience = "gatehouse",
            Expires = DateTime.UtcNow.AddMinutes(5),
            Claims = new Dictionary<string, object> { ["sub"] = "batch-job" },
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        });

        var old = Sign(before);
        Assert.Equal("batch-job", (await validator.ValidateAsync(old, CancellationToken.None)).Identity?.Agent);

        // Written by an editor that puts a byte-order mark first: the mark is not part of the secret.
        File.WriteAllText(secretFile, before + "\n", new UTF8Encoding(encoderShouldEmitUTF8Identifier: true));
        clock.Step = TimeSpan.FromSeconds(1.5);
        Assert.Equal("batch-job", (await validator.ValidateAsync(Sign(before), CancellationToken.None)).Identity?.Agent);

        // The secret leaked: the operator writes a new one in place, and no restart follows.
        var after = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        File.WriteAllText(secretFile, after + "\n");
        clock.Step = TimeSpan.FromSeconds(3);
        var cached = await validator.ValidateAsync(old, CancellationToken.None);
        Assert.Null(cached.Identity);
        Assert.Equal("identity.bad_signature", cached.Rule);
        Assert.Null((await validator.ValidateAsync(Sign(before), CancellationToken.None)).Identity);
        Assert.Equal("batch-job", (await validator.ValidateAsync(Sign(after), CancellationToken.None)).Identity?.Agent);

        // A file that cannot be read verifies nothing (it does not fall back to the last secret).
        File.Delete(secretFile);
        clock.Step = TimeSpan.FromSeconds(4.5);
        Assert.Null((await validator.ValidateAsync(Sign(after), CancellationToken.None)).Identity);
    }
}
