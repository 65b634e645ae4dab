using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Audit;

/// <summary>How much of a call its audit record keeps.</summary>
public enum CaptureLevel
{
    /// <summary>Who, what, the decision and its rule, counts and timings.</summary>
    Metadata,

    /// <summary>Metadata plus the result as the agent received it (masked), up to <see cref="AuditSettings.MaxCaptureBytes"/>.</summary>
    Full,
}

/// <summary>What an audit record, once the call goes on, is guaranteed to survive.</summary>
public enum AuditDurability
{
    /// <summary>
    /// The default: a finished record is flushed to disk (fsync) before the result leaves or a write commits, and survives a
    /// power cut. A started record is stored (it survives the gateway dying) before the statement runs, and reaches the disk
    /// with the next finished one: a power cut can lose it only for a call whose result never left. One fsync per call.
    /// </summary>
    PowerLoss,

    /// <summary>
    /// Each commit reaches the operating system (SQLite synchronous=NORMAL in WAL mode; PostgreSQL synchronous_commit off)
    /// before the call goes on: survives the gateway crashing or being killed, but a power cut or kernel crash of the
    /// store's machine may lose the last moment of records. Faster per call; a choice an operator makes knowingly.
    /// </summary>
    ProcessCrash,
}

/// <summary>How long audit records are kept, where they are streamed, how much of a result they keep, and how durably.</summary>
/// <param name="Sink">A JSON-lines file every finished record is appended to, for SIEMs; null for none.</param>
public sealed record AuditSettings(AuditRetention Retention, string? Sink, int MaxCaptureBytes)
{
    public static AuditSettings Default { get; } = new(AuditRetention.None, null, 16 * 1024);

    public AuditDurability Durability { get; init; } = AuditDurability.PowerLoss;
}

/// <summary>Where the gateway keeps its state: the SQLite state file, or a PostgreSQL database several instances share.</summary>
/// <param name="PostgresConnectionString">Null keeps everything in the state file.</param>
public sealed record StoreSettings(string? PostgresConnectionString, SecretSource Password)
{
    public static StoreSettings StateFile { get; } = new(null, SecretSource.None);
}

/// <summary>Retention run by a background job in <c>gatehouse serve</c>: by age, by record count, or both.</summary>
public sealed record AuditRetention(TimeSpan? MaxAge, int? MaxRecords, TimeSpan Every)
{
    public static AuditRetention None { get; } = new(null, null, TimeSpan.FromHours(1));

    public bool Enabled => MaxAge is not null || MaxRecords is not null;

    /// <summary>The cut a purge run now makes.</summary>
    public RetentionCut Cut => new(null, MaxRecords) { OlderThan = MaxAge };
}

/// <summary>Traces and metrics, exported over OTLP when an endpoint is configured; off otherwise.</summary>
public sealed record TelemetrySettings(Uri? OtlpEndpoint, string ServiceName)
{
    public static TelemetrySettings Off { get; } = new(null, "gatehouse");
}
