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

                var body = Encoding.UTF8.GetBytes(_document);
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(body);
                context.Response.Close();
            }
        }
    }
}
