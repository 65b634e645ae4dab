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
public sealed record ChainReport(int Sealed, int Open, IReadOnlyList<string> Problems)
{
    public bool Intact => Problems.Count == 0;
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

    private static string? SealedId(string sealedRecord)
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

    /// <param name="checkpoint">The latest purge checkpoint, if records were purged; the chain resumes from it.</param>
    /// <param name="signatureValid">Checks a checkpoint's signature over its signed text.</param>
    /// <param name="unreadable">Ids of rows that do not read as records at all: changed by hand, so reported as such.</param>
    public static ChainReport Verify(
        IReadOnlyList<ChainEntry> chain, IReadOnlyList<AuditRecord> records, ChainCheckpoint? checkpoint = null, Func<string, string, bool>? signatureValid = null, IReadOnlyList<string>? unreadable = null)
    {
        var problems = new List<string>();
        var prev = checkpoint?.LastHash ?? Genesis;
        var expectedSeq = (checkpoint?.ThroughSeq ?? 0) + 1;
        if (checkpoint is not null
            && signatureValid?.Invoke(ChainCheckpoint.SignedText(checkpoint.ThroughSeq, checkpoint.LastHash, checkpoint.Purged, checkpoint.At), checkpoint.Signature) != true)
        {
            problems.Add($"the purge checkpoint at link {checkpoint.ThroughSeq} is not signed by the checkpoint key: the purge record was forged or altered");
        }

        var latest = new Dictionary<string, ChainEntry>(StringComparer.Ordinal);
        foreach (var entry in chain)
        {
            if (entry.Seq != expectedSeq)
            {
                problems.Add($"links {expectedSeq}..{entry.Seq - 1} are missing: sealed records were deleted from the chain");
            }

            if (entry.Prev != prev)
            {
                problems.Add($"link {entry.Seq} (record {entry.RecordId}) does not follow the link before it: links were removed, inserted or reordered");
            }

            if (Hash(entry.Prev, entry.Sealed) != entry.Hash)
            {
                problems.Add($"link {entry.Seq} (record {entry.RecordId}) was altered after it was sealed");
            }
            else if (SealedId(entry.Sealed) is var sealedId && sealedId != entry.RecordId)
            {
                // The record id beside a link is not hashed; the one inside the sealed record is. Relabelled, a deleted
                // record's link would pass as an earlier link of another record.
                problems.Add($"link {entry.Seq} is labelled record {entry.RecordId} but seals record {sealedId ?? "(unreadable)"}: a link was relabelled to hide a record");
            }

            prev = entry.Hash;
            expectedSeq = entry.Seq + 1;
            latest[entry.RecordId] = entry;
        }

        var open = 0;
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in unreadable ?? [])
        {
            present.Add(id);
            problems.Add($"record {id} no longer reads as a record (a field holds what the gateway never writes): it was changed outside the gateway");
        }

        foreach (var record in records)
        {
            present.Add(record.Id);
            if (latest.TryGetValue(record.Id, out var link))
            {
                if (!SameRecord(record, link.Sealed))
                {
                    problems.Add($"record {record.Id} was modified after it was sealed (link {link.Seq})");
                }
            }
            else if (record.Decision == Verdict.Started)
            {
                open++;
            }
            else
            {
                problems.Add($"record {record.Id} is finished but was never sealed: it was inserted around the gateway");
            }
        }

        foreach (var (id, link) in latest.Where(l => !present.Contains(l.Key)))
        {
            problems.Add($"record {id} was deleted (sealed at link {link.Seq})");
        }

        return new ChainReport(latest.Count, open, problems);
    }
}
