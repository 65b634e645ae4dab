using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.Tests.Enforcement.Identity;

/// <summary>Keys fetched from a JWKS URL, as an IdP publishes, rotates and withdraws them.</summary>
public sealed partial class TokenValidatorTests
{
    [Fact]
    public async Task A_token_verified_under_a_key_the_idp_withdrew_is_refused_once_its_cached_trust_runs_out()
    {
        using var idp = new JwksServer();
        var leakedKey = NewKey("leaked");
        idp.Publish(leakedKey);
        var clock = new MovableClock();
        var issuer = _issuer with { Keys = new IssuerKeySource(null, null, idp.Address, null) };
        var validator = new TokenValidator([issuer], clock);
        var forged = Mint(issuer: issuer, key: leakedKey, lifetime: TimeSpan.FromHours(1));
        Assert.NotNull((await validator.ValidateAsync(forged, CancellationToken.None)).Identity);

        // The IdP withdraws the leaked key; a token naming its new one makes the gateway fetch the key set again.
        var newKey = NewKey("new");
        idp.Publish(newKey);
        Assert.NotNull((await validator.ValidateAsync(Mint(issuer: issuer, key: newKey), CancellationToken.None)).Identity);

        clock.Advance(TokenValidator.ReverifyAfter + TimeSpan.FromSeconds(1));
        var refused = await validator.ValidateAsync(forged, CancellationToken.None);

        Assert.Null(refused.Identity);
        Assert.Equal("identity.bad_signature", refused.Rule);
    }

    [Fact]
    public void Fetched_keys_are_fetched_again_after_the_issuers_key_max_age_an_hour_unless_it_says()
    {
        var fetched = _issuer with { Keys = new IssuerKeySource(null, null, new Uri("https://idp.example/jwks"), null) };
        Assert.Equal(TimeSpan.FromHours(1), IssuerKeys.Create(fetched, TimeProvider.System).Parameters.ConfigurationManager!.AutomaticRefreshInterval);
        var sooner = fetched with { KeyMaxAge = TimeSpan.FromMinutes(10) };
        Assert.Equal(TimeSpan.FromMinutes(10), IssuerKeys.Create(sooner, TimeProvider.System).Parameters.ConfigurationManager!.AutomaticRefreshInterval);
    }

    [Fact]
    public async Task Keys_from_a_discovery_document_that_names_another_issuer_are_not_taken()
    {
        using var idp = new JwksServer();
        var (issuer, token) = DiscoveredFrom(idp);

        // Another IdP's document (a mix-up, or an attacker's) signs nothing here, however good its keys.
        idp.Discover("https://someone-else.example", idp.Address.ToString());
        var refused = await new TokenValidator([issuer], TimeProvider.System).ValidateAsync(token, CancellationToken.None);
        Assert.Null(refused.Identity);
        Assert.Equal("identity.issuer_keys_unavailable", refused.Rule);
        Assert.Contains($"names issuer 'https://someone-else.example', not '{issuer.Issuer}'", refused.Reason);

        idp.Discover(issuer.Issuer, idp.Address.ToString());
        Assert.Equal("analyst", (await new TokenValidator([issuer], TimeProvider.System).ValidateAsync(token, CancellationToken.None)).Identity?.Agent);
    }

    [Fact]
    public async Task A_discovery_document_on_loopback_may_not_name_a_key_set_over_plain_http_elsewhere()
    {
        using var idp = new JwksServer();
        var (issuer, token) = DiscoveredFrom(idp);
        idp.Discover(issuer.Issuer, "http://keys.example/jwks");

        var refused = await new TokenValidator([issuer], TimeProvider.System).ValidateAsync(token, CancellationToken.None);

        Assert.Equal("identity.issuer_keys_unavailable", refused.Rule);
        Assert.Contains("'http://keys.example/jwks' is not an HTTPS address", refused.Reason);
    }

    [Fact]
    public async Task A_redirect_from_a_key_set_address_is_not_followed()
    {
        // Each address is held to HTTPS-or-loopback where it is fetched; a redirect's target would not be.
        using var idp = new JwksServer();
        var (issuer, token) = DiscoveredFrom(idp);
        idp.Discover(issuer.Issuer, idp.MovedAddress.ToString());
        var refused = await new TokenValidator([issuer], TimeProvider.System).ValidateAsync(token, CancellationToken.None);
        Assert.Equal("identity.issuer_keys_unavailable", refused.Rule);

        idp.Discover(issuer.Issuer, idp.Address.ToString());
        Assert.Equal("analyst", (await new TokenValidator([issuer], TimeProvider.System).ValidateAsync(token, CancellationToken.None)).Identity?.Agent);
    }

    [Fact]
    public async Task An_idp_that_never_answered_refuses_its_tokens_saying_its_keys_could_not_be_fetched()
    {
        Uri address;
        using (var idp = new JwksServer())
        {
            address = idp.Address;
        }

        var issuer = _issuer with { Keys = new IssuerKeySource(null, null, address, null) };
        var refused = await new TokenValidator([issuer], TimeProvider.System).ValidateAsync(Mint(issuer: issuer, key: NewKey("k1")), CancellationToken.None);

        Assert.Equal("identity.issuer_keys_unavailable", refused.Rule);
        Assert.Contains($"JWKS {address} did not answer", refused.Reason);
    }

    /// <summary>An issuer named by the server's own address, its keys found by discovery there, and a token it signed.</summary>
    private (IssuerConfig Issuer, string Token) DiscoveredFrom(JwksServer idp)
    {
        var key = NewKey("k1");
        idp.Publish(key);
        var issuer = _issuer with { Issuer = idp.Address.GetLeftPart(UriPartial.Authority), Keys = new IssuerKeySource(null, null, null, idp.DiscoveryAddress) };
        return (issuer, Mint(issuer: issuer, key: key));
    }

    private static RsaSecurityKey NewKey(string id) => new(RSA.Create(2048)) { KeyId = id };

    private sealed class MovableClock : TimeProvider
    {
        private TimeSpan _ahead;

        public void Advance(TimeSpan by) => _ahead += by;

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + _ahead;
    }

    /// <summary>An IdP's JWKS endpoint on loopback, serving the public half of whichever keys were published last.</summary>
    private sealed class JwksServer : IDisposable
    {
        private readonly HttpListener _listener = new();
        private volatile string _document = """{"keys":[]}""";
        private volatile string? _discovery;

        public JwksServer()
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Address = new Uri($"http://127.0.0.1:{port}/jwks");
            _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            _listener.Start();
            _ = Task.Run(ServeAsync);
        }

        public Uri Address { get; }

        public Uri DiscoveryAddress => new(Address, "/.well-known/openid-configuration");

        /// <summary>Answers with a redirect to the key set.</summary>
        public Uri MovedAddress => new(Address, "/moved");

        /// <summary>Serves a discovery document naming this issuer and key set.</summary>
        public void Discover(string issuer, string jwksUri) =>
            _discovery = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string> { ["issuer"] = issuer, ["jwks_uri"] = jwksUri });

        public void Publish(params RsaSecurityKey[] keys) =>
            _document = $$"""{"keys":[{{string.Join(",", keys.Select(Jwk))}}]}""";

        public void Dispose() => _listener.Close();

        private static string Jwk(RsaSecurityKey key)
        {
            var parameters = key.Rsa.ExportParameters(includePrivateParameters: false);
            return $$"""{"kty":"RSA","use":"sig","alg":"RS256","kid":"{{key.KeyId}}","n":"{{Base64UrlEncoder.Encode(parameters.Modulus)}}","e":"{{Base64UrlEncoder.Encode(parameters.Exponent)}}"}""";
        }

        private async Task ServeAsync()
        {
            while (true)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                if (context.Request.Url!.AbsolutePath == MovedAddress.AbsolutePath)
                {
                    context.Response.Redirect(Address.ToString());
                    context.Response.Close();
                    continue;
                }

                var body = Encoding.UTF8.GetBytes(context.Request.Url.AbsolutePath == DiscoveryAddress.AbsolutePath && _discovery is { } discovery ? discovery : _document);
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(body);
                context.Response.Close();
            }
        }
    }
}
