using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Gatehouse.Connectors.Postgres.Setup;

/// <summary>
/// The SCRAM-SHA-256 secret PostgreSQL keeps for a password (RFC 5803's form, as <c>pg_authid.rolpassword</c> holds it),
/// made on the gateway's side so that <c>CREATE ROLE ... PASSWORD</c> never carries the password itself: a server
/// logging statements, or a <c>pg_stat_activity</c> reader, sees only the verifier. PostgreSQL stores a verifier
/// as given, whatever its <c>password_encryption</c>.
/// </summary>
public static class ScramVerifier
{
    /// <summary>PostgreSQL's default iteration count (its <c>scram_iterations</c>, from 16); setup uses no fewer.</summary>
    public const int DefaultIterations = 4096;

    private const int SaltBytes = 16;

    /// <summary>
    /// <c>SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey</c> for <paramref name="password"/>, with a fresh random salt.
    /// The password is normalized to Unicode form KC, as Npgsql does when it signs in, so the gateway's own connections
    /// prove the same key this verifier checks.
    /// </summary>
    public static string Create(string password, int iterations = DefaultIterations)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, DefaultIterations);
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var salted = Rfc2898DeriveBytes.Pbkdf2(
            Encoding.UTF8.GetBytes(password.Normalize(NormalizationForm.FormKC)), salt, iterations, HashAlgorithmName.SHA256, SHA256.HashSizeInBytes);
        var storedKey = SHA256.HashData(HMACSHA256.HashData(salted, "Client Key"u8));
        var serverKey = HMACSHA256.HashData(salted, "Server Key"u8);
        return string.Create(
            CultureInfo.InvariantCulture,
            $"SCRAM-SHA-256${iterations}:{Convert.ToBase64String(salt)}${Convert.ToBase64String(storedKey)}:{Convert.ToBase64String(serverKey)}");
    }
}
