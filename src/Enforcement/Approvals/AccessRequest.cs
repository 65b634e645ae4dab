using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Approvals;

/// <summary>Where an access request stands.</summary>
public enum AccessRequestStatus
{
    Pending,
    Approved,
    Denied,
    Expired,

    /// <summary>Approved, then revoked by an admin before the grant ran out.</summary>
    Revoked,
}

/// <summary>What request_access answers: the request just filed (if any), and where each of the caller's recent requests stands.</summary>
public sealed record RequestStatus(AccessRequest? Created, IReadOnlyList<AccessRequest> Access, IReadOnlyList<StatementApproval> Statements)
{
    /// <summary>Why the agent's requests could not be listed (then <see cref="Access"/> and <see cref="Statements"/> are empty), or null.</summary>
    public string? NotListed { get; init; }
}

/// <summary>An agent's request for time-boxed access to some tables, and its decision.</summary>
public sealed record AccessRequest(
    string Id,
    string Agent,
    string Subject,
    string Issuer,
    string Connection,
    IReadOnlyList<RelationName> Tables,
    AccessLevel Access,
    string Reason,
    TimeSpan Duration,
    AccessRequestStatus Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset? DecidedAt = null,
    string? DecidedBy = null,
    string? DecisionNote = null,
    DateTimeOffset? GrantExpiresAt = null)
{
    /// <summary>How long a request may wait for a decision before it expires.</summary>
    public static TimeSpan PendingLifetime { get; } = TimeSpan.FromHours(1);

    /// <summary>Whole schemas asked for, besides <see cref="Tables"/>.</summary>
    public IReadOnlyList<string> Schemas { get; init; } = [];

    /// <summary>For an unmask request: the sensitive class the agent may see unmasked on the connection while it lasts.</summary>
    public string? Unmask { get; init; }

    /// <summary>What is asked, as request_access spells it: read, write or unmask:CLASS.</summary>
    public string AccessText => Unmask is null ? Access.ToPolicyString() : $"unmask:{Unmask}";

    /// <summary>What the request asks for, in words: "read public.payments, schema sales".</summary>
    public string Scope => Tables.Count + Schemas.Count == 0 ? "the connection" : string.Join(", ", Tables.Select(t => t.ToString()).Concat(Schemas.Select(s => $"schema {s}")));

    public static string NewId() => "req_" + Guid.CreateVersion7().ToString("N")[..20];

    /// <summary>Null when <paramref name="approver"/> may decide this request; the requester never may, through any channel.</summary>
    public string? RefuseApprover(string approver, Identity.AgentIdentity? verified = null) =>
        string.Equals(approver, Agent, StringComparison.Ordinal) || string.Equals(approver, Subject, StringComparison.Ordinal)
        || (verified is not null && verified.Issuer == Issuer && verified.Subject == Subject)
            ? $"'{approver}' made this request and cannot decide it; another person must"
            : null;

    /// <summary>
    /// The grant this request gives while approved and unexpired. An unmask right covers no relation of its own (a request
    /// stored before unmask requests were refused tables could still name some).
    /// </summary>
    public Grant ToGrant() =>
        new(Connection, Access, Unmask is null ? Schemas : [], Unmask is null ? Tables : []) { Source = $"request {Id}", ExpiresAt = GrantExpiresAt, Unmask = Unmask };
}
