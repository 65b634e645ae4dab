using System.Security.Cryptography;
using Gatehouse.Enforcement.Policy;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Gatehouse.Enforcement.Identity;

/// <summary>A local development issuer: an RSA key in a 0600 file, used to mint agent tokens the policy trusts.</summary>
public static class DevIssuer
{
    /// <summary>Loads the signing key, creating it (owner-only file mode) on first use.</summary>
    public static RsaSecurityKey LoadOrCreateKey(string path)
    {
        if (!File.Exists(path))
        {
            TryCreateKey(path);
        }

        var rsa = RSA.Create();
        rsa.ImportFromPem(File.ReadAllText(path));
        var key = new RsaSecurityKey(rsa);
        key.KeyId = Base64UrlEncoder.Encode(JsonWebKeyConverter.ConvertFromRSASecurityKey(key).ComputeJwkThumbprint());
        return key;
    }

    private static void TryCreateKey(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var rsa = RSA.Create(2048);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        // Written whole and on disk under another name, then moved into place: another process never reads half a key, and a
        // power loss never leaves an empty one (which would sign nothing again, and verify nothing signed before).
        var written = $"{path}.{Guid.NewGuid():N}.tmp";
        using (var stream = new FileStream(written, options))
        {
            stream.Write(System.Text.Encoding.ASCII.GetBytes(rsa.ExportPkcs8PrivateKeyPem()));
            stream.Flush(flushToDisk: true);
        }

        try
        {
            File.Move(written, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another process created it first; use theirs.
            File.Delete(written);
        }
    }

    /// <summary>Signs an RS256 access token for <paramref name="agent"/> that <paramref name="issuer"/> will accept.</summary>
    /// <param name="extraClaims">More claims, e.g. <c>scope</c>, <c>azp</c> or an RFC 8693 <c>act</c> object naming a delegating human.</param>
    public static string Mint(IssuerConfig issuer, RsaSecurityKey key, string agent, IReadOnlyList<string> groups, TimeSpan lifetime, DateTimeOffset now, IReadOnlyDictionary<string, object>? extraClaims = null)
    {
        var claims = new Dictionary<string, object>
        {
            [issuer.AgentClaim] = agent,
            [issuer.GroupsClaim] = groups.ToArray(),
            [JwtRegisteredClaimNames.Jti] = Guid.NewGuid().ToString("N"),
        };
        if (issuer.AgentClaim != JwtRegisteredClaimNames.Sub)
        {
            claims[JwtRegisteredClaimNames.Sub] = agent;
        }

        foreach (var (name, value) in extraClaims ?? new Dictionary<string, object>())
        {
            claims[name] = value;
        }

        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer.Issuer,
            Audience = issuer.Audiences[0],
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = now.Add(lifetime).UtcDateTime,
            Claims = claims,
            TokenType = "at+jwt",
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.RsaSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }
}
