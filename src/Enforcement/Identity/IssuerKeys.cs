using Gatehouse.Enforcement.Policy;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.Enforcement.Identity;

/// <summary>Builds the validation parameters for one trusted issuer, with its keys from a dev key, a JWKS file, a JWKS URL or OIDC discovery.</summary>
internal static class IssuerKeys
{
    public static TokenValidationParameters CreateParameters(IssuerConfig issuer)
    {
        var parameters = new TokenValidationParameters
        {
            ValidIssuer = issuer.Issuer,
            ValidAudiences = issuer.Audiences,
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
            var documents = new HttpDocumentRetriever { RequireHttps = !address.IsLoopback };
            IConfigurationRetriever<OpenIdConnectConfiguration> retriever = keys.Discovery is not null
                ? new OpenIdConnectConfigurationRetriever()
                : new JwksOnlyRetriever();
            // An unknown kid (a key rotation) makes the token handler ask for fresh keys, at most once per KeyRefreshInterval;
            // if the IdP is down, the keys already fetched keep verifying the tokens they signed.
            parameters.ConfigurationManager = new ConfigurationManager<OpenIdConnectConfiguration>(address.ToString(), retriever, documents)
            {
                RefreshInterval = issuer.KeyRefreshInterval,
                AutomaticRefreshInterval = TimeSpan.FromHours(1),
            };
        }

        return parameters;
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
}
