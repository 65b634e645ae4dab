using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Gatehouse.Enforcement.Audit;

/// <summary>One link of the audit hash chain: a record as it was sealed, and the hash binding it to the link before.</summary>
public sealed record ChainEntry(long Seq, string RecordId, string Prev, string Hash, string Sealed);

/// <summary>
/// Where a purge cut the chain: links up to <see cref="ThroughSeq"/> are gone, the next link must follow <see cref="LastHash"/>.
/// Signed, so the cut itself cannot be moved or forged without the checkpoint key.
/// </summary>
public sealed record ChainCheckpoint(long ThroughSeq, string LastHash, int Purged, DateTimeOffset At, string Signature)
{
    /// <summary>The exact text that is signed.</summary>
    public static string SignedText(long throughSeq, string lastHash, int purged, DateTimeOffset at) =>
        $"gatehouse-audit-checkpoint\n{throughSeq}\n{lastHash}\n{purged}\n{at.ToUnixTimeMilliseconds()}";
}

/// <summary>What verification found: how much was checked, and each break in words.</summary>
/// <param name="Unlisted">Problems found beyond the <see cref="ChainVerifier.ListedProblems"/> kept in words.</param>
public sealed record ChainReport(long Sealed, long Open, IReadOnlyList<string> Problems, long Unlisted = 0)
{
    public bool Intact => Problems.Count == 0;

    public long ProblemCount => Problems.Count + Unlisted;
}

/// <summary>
/// The audit log's hash chain (one chain per store, shared by every gateway process writing to it). Each completed record is
/// sealed as canonical JSON with SHA-256(previous hash + record); a record sealed twice (a write's outcome, then its final
/// state) has two links, and the latest must match what the store holds.
/// </summary>
public static class AuditChain
{
    public const string Genesis = "genesis";

    public static string Canonical(AuditRecord record) => JsonSerializer.Serialize(record, AuditRecordJson.Default.AuditRecord);

    /// <summary>
    /// Whether the stored record is the one that was sealed. A record sealed before a newer gateway added fields lacks them
    /// in its sealed text; read back, it has them as null. So a mismatch is checked once more on the sealed text read as a record.
    /// </summary>
    public static bool SameRecord(AuditRecord stored, string sealedRecord)
    {
        var canonical = Canonical(stored);
        if (canonical == sealedRecord)
        {
            return true;
        }

        try
        {
            return JsonSerializer.Deserialize(sealedRecord, AuditRecordJson.Default.AuditRecord) is { } original && Canonical(original) == canonical;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    internal static string? SealedId(string sealedRecord)
    {
        try
        {
            return JsonSerializer.Deserialize(sealedRecord, AuditRecordJson.Default.AuditRecord)?.Id;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>SHA-256 of the UTF-8 text <c>prev + "\n" + sealedRecord</c>, in lowercase hex.</summary>
    /// <remarks>
    /// This runs once for every finished call. A record of ordinary size is encoded into a pooled buffer instead of being
    /// joined into a new string and array; the bytes used are cleared before it goes back, as the record holds the call's
    /// SQL and parameters. A large one (a captured result excerpt) gets an array of its own, so the pool keeps nothing big.
    /// </remarks>
    public static string Hash(string prev, string sealedRecord)
    {
        var length = Encoding.UTF8.GetByteCount(prev) + 1 + Encoding.UTF8.GetByteCount(sealedRecord);
        var pooled = length <= MaxPooledHashInput;
        var buffer = pooled ? ArrayPool<byte>.Shared.Rent(length) : new byte[length];
        try
        {
            var written = Encoding.UTF8.GetBytes(prev, buffer);
            buffer[written++] = (byte)'\n';
            Encoding.UTF8.GetBytes(sealedRecord, buffer.AsSpan(written));
            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(buffer.AsSpan(0, length), hash);
            return Convert.ToHexStringLower(hash);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer.AsSpan(0, length));
            if (pooled)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private const int MaxPooledHashInput = 64 * 1024;
}
