using System.Security.Claims;
using Gatehouse.Enforcement.Identity;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Lets JwtBearer authenticate HTTP requests with the gateway's own validator, so both transports verify tokens the same way.
/// Whether an admin has disabled the identity is for <see cref="AuthChallenges"/> to check, with the request at hand.
/// </summary>
internal sealed class GatewayTokenHandler(TokenValidator validator) : TokenHandler
{
    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        var result = await validator.ValidateAsync(token, CancellationToken.None);
        if (result.Identity is not { } identity)
        {
            return new TokenValidationResult { IsValid = false, Exception = new SecurityTokenValidationException(result.Reason) };
        }

        var claims = new List<Claim>
        {
            new("agent", identity.Agent),
            new("sub", identity.Subject),
            new("iss", identity.Issuer),
        };
        claims.AddRange(identity.Groups.Select(g => new Claim("groups", g)));
        claims.AddRange(identity.Scopes.Select(s => new Claim("scope", s)));
        // JwtBearer treats a result without a SecurityToken as a failure; it reads only the validity times from it.
        return new TokenValidationResult { IsValid = true, SecurityToken = new VerifiedToken(identity), ClaimsIdentity = new ClaimsIdentity(claims, "Gatehouse", "agent", "groups") };
    }

    /// <summary>
    /// The token as the validator verified it. The validator has already read the JWT (and caches what it read), so this
    /// does not parse it a second time on every request, as a <see cref="JsonWebToken"/> would.
    /// </summary>
    internal sealed class VerifiedToken(AgentIdentity identity) : SecurityToken
    {
        public AgentIdentity Identity => identity;

        public override string Id => identity.TokenId ?? "";

        public override string Issuer => identity.Issuer;

        public override SecurityKey? SecurityKey => null;

        public override SecurityKey? SigningKey { get; set; }

        public override DateTime ValidFrom => DateTime.MinValue;

        public override DateTime ValidTo => identity.ExpiresAt.UtcDateTime;
    }
}
