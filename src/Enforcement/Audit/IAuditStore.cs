namespace Gatehouse.Enforcement.Audit;

/// <summary>Durable storage for audit records. A call starts only after its record is stored.</summary>
public interface IAuditStore
{
    /// <summary>Stores the record of a call that is starting; throws if it cannot be made durable.</summary>
    ValueTask BeginAsync(AuditRecord record, CancellationToken cancellationToken);

    /// <summary>Stores the final state of a call started with <see cref="BeginAsync"/>.</summary>
    ValueTask CompleteAsync(AuditRecord record, CancellationToken cancellationToken);

    ValueTask<AuditRecord?> GetAsync(string id, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<AuditRecord>> ListAsync(AuditQuery query, CancellationToken cancellationToken);
}

/// <summary>Filters for listing audit records, newest first.</summary>
public sealed record AuditQuery(string? Agent = null, DateTimeOffset? Since = null, Verdict? Decision = null, int Limit = 100);
