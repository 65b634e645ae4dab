using System.Security.Cryptography;
using System.Text;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Cli;

/// <summary>
/// The RSA key that signs audit purge checkpoints: <c>audit-checkpoint.pem</c> (mode 0600) beside the state file, made on the
/// first purge. Keep it where whoever can write the state file cannot: then a forged purge shows in <c>audit verify</c>.
/// </summary>
public sealed class CheckpointKey(string path)
{
    public static CheckpointKey For(GatewayPolicy policy) =>
        new(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(policy.Gateway.StatePath))!, "audit-checkpoint.pem"));

    public string Sign(string text) =>
        Convert.ToBase64String(DevIssuer.LoadOrCreateKey(path).Rsa.SignData(Encoding.UTF8.GetBytes(text), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));

    // Without the key no checkpoint can be trusted.
    public bool Verify(string text, string signature)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        try
        {
            return DevIssuer.LoadOrCreateKey(path).Rsa.VerifyData(Encoding.UTF8.GetBytes(text), Convert.FromBase64String(signature), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or CryptographicException)
        {
            // A key file that holds no key (cut short by a power loss) verifies nothing, and says so, rather than crash verify.
            return false;
        }
    }
}
