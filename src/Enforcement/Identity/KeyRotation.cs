using System.Collections.Concurrent;
using Gatehouse.Enforcement.Policy;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.Enforcement.Identity;

/// <summary>
/// An issuer rotated its signing key: a token names a <c>kid</c> the gateway has not fetched. The keys are fetched again,
/// at most once per <see cref="IssuerConfig.KeyRefreshInterval"/> per issuer (so a flood of bad tokens cannot make the gateway
/// hammer the IdP), and the new set is awaited before the token is checked again. If the IdP cannot be reached, the keys
/// already fetched stay in use.
/// </summary>
internal sealed class KeyRotation(TimeProvider time)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(3);

    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastForced = new(StringComparer.Ordinal);

    /// <summary>True when a newer key set arrived, so validating again may succeed.</summary>
    public async Task<bool> RefreshAsync(IssuerConfig issuer, TokenValidationParameters parameters, string? keyId, CancellationToken cancellationToken)
    {
        if (parameters.ConfigurationManager is not ConfigurationManager<OpenIdConnectConfiguration> manager)
        {
            return false;
        }

        // The token handler asks for fresh keys itself on an unknown kid: they may have arrived already.
        if (Publishes(await manager.GetConfigurationAsync(cancellationToken).ConfigureAwait(false), keyId))
        {
            return true;
        }

        var now = time.GetUtcNow();
        var last = _lastForced.GetOrAdd(issuer.Issuer, DateTimeOffset.MinValue);
        if (now - last < issuer.KeyRefreshInterval || !_lastForced.TryUpdate(issuer.Issuer, now, last))
        {
            return false;
        }

        var before = await manager.GetConfigurationAsync(cancellationToken).ConfigureAwait(false);
        manager.RequestRefresh();
        // The refresh may run in the background: wait (briefly) for the new configuration to replace the old one.
        var deadline = now + Wait;
        while (time.GetUtcNow() < deadline)
        {
            try
            {
                var current = await manager.GetConfigurationAsync(cancellationToken).ConfigureAwait(false);
                if (!ReferenceEquals(current, before) || Publishes(current, keyId))
                {
                    return true;
                }
            }
            catch (InvalidOperationException)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), time, cancellationToken).ConfigureAwait(false);
        }

        return false;
    }

    private static bool Publishes(OpenIdConnectConfiguration configuration, string? keyId) =>
        keyId is not null && configuration.SigningKeys.Any(k => k.KeyId == keyId);
}
