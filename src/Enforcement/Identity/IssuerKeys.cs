using Gatehouse.Enforcement.Policy;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.Enforcement.Identity;

/// <summary>Builds the validation parameters for one trusted issuer, with its keys from a dev key, a JWKS file, a JWKS URL or OIDC discovery.</summary>
internal static class IssuerKeys
{
    /// <summary>
    /// The parameters, and for keys kept in a file (a shared secret, a JWKS file), the file they are read from: written anew
    /// (a rotation, or a leaked key removed), its keys are the ones in force from the next token on.
    /// </summary>
    public static (TokenValidationParameters Parameters, KeyFile? File) Create(IssuerConfig issuer, TimeProvider time)
    {
        var parameters = CreateParameters(issuer);
        var file = issuer.SharedSecret.FilePath is { } secretFile
            ? new KeyFile(secretFile, time, text => [new SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(text.TrimEnd('\r', '\n')))])
            : issuer.Keys.JwksFile is { } jwksFile
                ? new KeyFile(jwksFile, time, text => new JsonWebKeySet(text).GetSigningKeys())
                : null;
        if (file is not null)
        {
            parameters.IssuerSigningKey = null;
            parameters.IssuerSigningKeys = null;
            parameters.IssuerSigningKeyResolver = (_, _, _, _) => file.Keys;
        }

        return (parameters, file);
    }

    private static TokenValidationParameters CreateParameters(IssuerConfig issuer)
    {
        var parameters = new TokenValidationParameters
        {
            ValidIssuer = issuer.Issuer,
            ValidAudiences = issuer.Audiences,
            // Exactly as written: the library would accept "x/" for "x", while the policy tells the admin audience from the
            // agents' by exact comparison, so an agent's token could otherwise open an admin API set to "x/".
            IgnoreTrailingSlashWhenValidatingAudience = false,
            ValidAlgorithms = issuer.Algorithms,
            ClockSkew = issuer.ClockSkew,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ValidateIssuerSigningKey = true,
            NameClaimType = issuer.AgentClaim,
        };

        if (issuer.RequiredType is { } type)
        {
            parameters.ValidTypes = [type];
        }

        var keys = issuer.Keys;
        if (issuer.SharedSecret.Read() is { } secret)
        {
            // HS* only: the loader refuses a shared secret next to published keys, so a public key is never an HMAC secret.
            parameters.IssuerSigningKey = new SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(secret));
        }
        else if (keys.DevKeyFile is not null)
        {
            parameters.IssuerSigningKey = DevIssuer.LoadOrCreateKey(keys.DevKeyFile);
        }
        else if (keys.JwksFile is not null)
        {
            parameters.IssuerSigningKeys = new JsonWebKeySet(File.ReadAllText(keys.JwksFile)).GetSigningKeys();
        }
        else
        {
            var address = (keys.Discovery ?? keys.JwksUrl)!;
            IConfigurationRetriever<OpenIdConnectConfiguration> retriever = keys.Discovery is not null
                ? new DiscoveryRetriever(issuer.Issuer)
                : new JwksOnlyRetriever();
            // An unknown kid (a key rotation) makes the token handler ask for fresh keys, at most once per KeyRefreshInterval;
            // if the IdP is down, the keys already fetched keep verifying the tokens they signed.
            parameters.ConfigurationManager = new ConfigurationManager<OpenIdConnectConfiguration>(address.ToString(), retriever, new HttpsUnlessLoopback())
            {
                RefreshInterval = issuer.KeyRefreshInterval,
                AutomaticRefreshInterval = issuer.KeyMaxAge,
                // A token the keys now published do not verify is refused: falling back to the last set that did would keep a
                // key the IdP withdrew (a leaked one) in force for an hour. An IdP that is down leaves the fetched keys in use.
                UseLastKnownGoodConfiguration = false,
            };
        }

        return parameters;
    }

    /// <summary>
    /// Fetches each document over HTTPS, or over plain HTTP from this machine only. Judged per address, not by the address
    /// configured: a discovery document on loopback (a test IdP, a sidecar) may name a key set anywhere, and that one must
    /// come over HTTPS like any other, or whoever sits on the network path could serve their own keys.
    /// </summary>
    private sealed class HttpsUnlessLoopback : IDocumentRetriever
    {
        // Redirects are not followed: each address is judged here, and a redirect's target would not be. One client for all
        // issuers, as the library's own default is.
        // Key sets and discovery documents are a few kilobytes: a megabyte is plenty, and bounds what an IdP can make us hold.
        private static readonly HttpClient Client = new(new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            MaxResponseContentBufferSize = 1024 * 1024,
        };
        private readonly HttpDocumentRetriever _http = new(Client) { RequireHttps = false };

        public Task<string> GetDocumentAsync(string address, CancellationToken cancel)
        {
            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri)
                || !(uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback)))
            {
                throw new IssuerKeysException($"'{address}' is not an HTTPS address (plain HTTP is allowed for this machine's own addresses only)");
            }

            return _http.GetDocumentAsync(address, cancel);
        }
    }

    /// <summary>
    /// OIDC discovery, holding the document to the issuer it was configured for (OpenID Connect Discovery 1.0, section 4.3):
    /// a document naming another issuer is another IdP's, or a mix-up, and its keys are not taken.
    /// </summary>
    private sealed class DiscoveryRetriever(string issuer) : IConfigurationRetriever<OpenIdConnectConfiguration>
    {
        public async Task<OpenIdConnectConfiguration> GetConfigurationAsync(string address, IDocumentRetriever retriever, CancellationToken cancel)
        {
            var configuration = await OpenIdConnectConfigurationRetriever.GetAsync(address, retriever, cancel).ConfigureAwait(false);
            if (!string.Equals(configuration.Issuer, issuer, StringComparison.Ordinal))
            {
                throw new IssuerKeysException($"the discovery document at '{address}' names issuer '{TokenValidator.Printable(configuration.Issuer)}', not '{issuer}'");
            }

            return configuration;
        }
    }

    /// <summary>Treats a bare JWKS document as a configuration whose only content is its signing keys.</summary>
    private sealed class JwksOnlyRetriever : IConfigurationRetriever<OpenIdConnectConfiguration>
    {
        public async Task<OpenIdConnectConfiguration> GetConfigurationAsync(string address, IDocumentRetriever retriever, CancellationToken cancel)
        {
            var json = await retriever.GetDocumentAsync(address, cancel).ConfigureAwait(false);
            var configuration = new OpenIdConnectConfiguration { JsonWebKeySet = new JsonWebKeySet(json) };
            foreach (var key in configuration.JsonWebKeySet.GetSigningKeys())
            {
                configuration.SigningKeys.Add(key);
            }

            return configuration;
        }
    }

    /// <summary>
    /// Keys read from a file, read again at most once a second, and taken up when its content changed. <see cref="Generation"/>
    /// counts the changes, so tokens verified under keys since replaced are verified again.
    /// </summary>
    internal sealed class KeyFile(string path, TimeProvider time, Func<string, IList<SecurityKey>> parse)
    {
        private static readonly TimeSpan LookEvery = TimeSpan.FromSeconds(1);
        private readonly Lock _gate = new();
        private byte[]? _content;
        private long _lookedAt;
        private IList<SecurityKey> _keys = [];
        private int _generation;

        public IList<SecurityKey> Keys
        {
            get
            {
                Look();
                return Volatile.Read(ref _keys);
            }
        }

        public int Generation
        {
            get
            {
                Look();
                return Volatile.Read(ref _generation);
            }
        }

        private void Look()
        {
            // Ticks, read and written whole: a DateTimeOffset read outside the lock could tear.
            var now = time.GetUtcNow().UtcTicks;
            if (now - Volatile.Read(ref _lookedAt) < LookEvery.Ticks)
            {
                return;
            }

            lock (_gate)
            {
                if (now - _lookedAt < LookEvery.Ticks)
                {
                    return;
                }

                Volatile.Write(ref _lookedAt, now);
                byte[] content;
                IList<SecurityKey> keys;
                try
                {
                    content = File.ReadAllBytes(path);
                    if (_content is not null && content.AsSpan().SequenceEqual(_content))
                    {
                        return;
                    }

                    // As File.ReadAllText would: a byte-order mark (Windows editors write one) is not part of the key.
                    keys = parse(System.Text.Encoding.UTF8.GetString(content).TrimStart('\uFEFF'));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or System.Text.Json.JsonException)
                {
                    // A file that cannot be read (gone, or half written) verifies nothing until it can: fail closed.
                    content = [];
                    keys = [];
                }

                _content = content;
                Volatile.Write(ref _keys, keys);
                Interlocked.Increment(ref _generation);
            }
        }
    }
}

/// <summary>An issuer's keys could not be fetched, for a reason the gateway found itself (and may say).</summary>
internal sealed class IssuerKeysException(string message) : Exception(message);
