namespace Gatehouse.Enforcement.Audit;

/// <summary>
/// Checks an audit log's hash chain as the store streams it past, so a log of any length verifies in the same small memory:
/// first every link in order (<see cref="Link"/>), then every record beside its latest link, and every latest link whose
/// record is gone (<see cref="Record"/>). The first <see cref="ListedProblems"/> problems are kept in words, the rest counted:
/// a log tampered with throughout would otherwise fill memory with sentences.
/// </summary>
public sealed class ChainVerifier
{
    public const int ListedProblems = 1_000;

    private readonly List<string> _problems = [];
    private long _unlisted;
    private string _prev;
    private long _expectedSeq;
    private long _sealed;
    private long _open;

    /// <param name="checkpoint">The latest purge checkpoint, if records were purged; the chain resumes from it.</param>
    /// <param name="signatureValid">Checks a checkpoint's signature over its signed text.</param>
    public ChainVerifier(ChainCheckpoint? checkpoint, Func<string, string, bool>? signatureValid)
    {
        _prev = checkpoint?.LastHash ?? AuditChain.Genesis;
        _expectedSeq = (checkpoint?.ThroughSeq ?? 0) + 1;
        if (checkpoint is not null
            && signatureValid?.Invoke(ChainCheckpoint.SignedText(checkpoint.ThroughSeq, checkpoint.LastHash, checkpoint.Purged, checkpoint.At), checkpoint.Signature) != true)
        {
            Problem($"the purge checkpoint at link {checkpoint.ThroughSeq} is not signed by the checkpoint key: the purge record was forged or altered");
        }
    }

    /// <summary>The next link of the chain, in the order of its sequence numbers.</summary>
    public void Link(ChainEntry entry)
    {
        if (entry.Seq != _expectedSeq)
        {
            Problem($"links {_expectedSeq}..{entry.Seq - 1} are missing: sealed records were deleted from the chain");
        }

        if (entry.Prev != _prev)
        {
            Problem($"link {entry.Seq} (record {entry.RecordId}) does not follow the link before it: links were removed, inserted or reordered");
        }

        if (AuditChain.Hash(entry.Prev, entry.Sealed) != entry.Hash)
        {
            Problem($"link {entry.Seq} (record {entry.RecordId}) was altered after it was sealed");
        }
        else if (AuditChain.SealedId(entry.Sealed) is var sealedId && sealedId != entry.RecordId)
        {
            // The record id beside a link is not hashed; the one inside the sealed record is. Relabelled, a deleted record's
            // link would pass as an earlier link of another record.
            Problem($"link {entry.Seq} is labelled record {entry.RecordId} but seals record {sealedId ?? "(unreadable)"}: a link was relabelled to hide a record");
        }

        _prev = entry.Hash;
        _expectedSeq = entry.Seq + 1;
    }

    /// <summary>One record of the store beside the latest link sealing it, once every link has been seen.</summary>
    /// <param name="storedId">The id of the record's row, or null for a link whose record is gone from the store.</param>
    /// <param name="record">The row read as a record; null if it no longer reads as one (a field holds what the gateway never writes).</param>
    /// <param name="latest">The latest link whose label is this record, if any.</param>
    public void Record(string? storedId, AuditRecord? record, ChainEntry? latest)
    {
        if (latest is not null)
        {
            _sealed++;
        }

        if (storedId is null)
        {
            if (latest is not null)
            {
                Problem($"record {latest.RecordId} was deleted (sealed at link {latest.Seq})");
            }
        }
        else if (record is null)
        {
            Problem($"record {storedId} no longer reads as a record (a field holds what the gateway never writes): it was changed outside the gateway");
        }
        else if (latest is not null)
        {
            if (!AuditChain.SameRecord(record, latest.Sealed))
            {
                Problem($"record {storedId} was modified after it was sealed (link {latest.Seq})");
            }
        }
        else if (record.Decision == Verdict.Started)
        {
            _open++;
        }
        else
        {
            Problem($"record {storedId} is finished but was never sealed: it was inserted around the gateway");
        }
    }

    public ChainReport Report() => new(_sealed, _open, [.. _problems], _unlisted);

    private void Problem(string problem)
    {
        if (_problems.Count < ListedProblems)
        {
            _problems.Add(problem);
        }
        else
        {
            _unlisted++;
        }
    }
}
