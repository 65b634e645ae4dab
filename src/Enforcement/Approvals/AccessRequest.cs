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

/// <summary>Who may not decide a request because it is theirs: the agent, its subject, and the person it acts for.</summary>
internal static class ApproverRules
{
    public static string? Requester(string approver, Identity.AgentIdentity? verified, string agent, string subject, string issuer, string? delegatedBy)
    {
        if (string.Equals(approver, agent, StringComparison.Ordinal) || string.Equals(approver, subject, StringComparison.Ordinal)
            || (verified is not null && verified.Issuer == issuer && verified.Subject == subject))
        {
            return $"'{approver}' made this request and cannot decide it; another person must";
        }

        // The human driving the agent asked, through it: four eyes means someone else. (Where the policy lets the agent's
        // operator approve, that is the one way, through the client, and counts once.)
        return delegatedBy is not null && (string.Equals(approver, delegatedBy, StringComparison.Ordinal) || string.Equals(verified?.Subject, delegatedBy, StringComparison.Ordinal))
            ? $"'{approver}' is the person agent '{agent}' acts for, so this request is theirs too; another person must decide it"
            : null;
    }
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
    /// <summary>How long a request stored before <see cref="PendingUntil"/> was kept waited for a decision before it expired.</summary>
    public static TimeSpan FormerPendingLifetime { get; } = TimeSpan.FromHours(1);

    /// <summary>When it expires undecided: <c>approvals.pending_ttl</c> after it was filed, as the policy stood then.</summary>
    public DateTimeOffset? PendingUntil { get; init; }

    /// <summary>When it expires undecided (one stored before that was kept: an hour after it was filed).</summary>
    public DateTimeOffset UndecidedExpiry => UndecidedExpiryOf(CreatedAt, PendingUntil);

    /// <summary>When a request filed at <paramref name="created"/> expires undecided, with its <see cref="PendingUntil"/> if kept.</summary>
    public static DateTimeOffset UndecidedExpiryOf(DateTimeOffset created, DateTimeOffset? pendingUntil) => pendingUntil ?? created + FormerPendingLifetime;

    /// <summary>Whole schemas asked for, besides <see cref="Tables"/>.</summary>
    public IReadOnlyList<string> Schemas { get; init; } = [];

    /// <summary>For an unmask request: the sensitive class the agent may see unmasked on the connection while it lasts.</summary>
    public string? Unmask { get; init; }

    /// <summary>What is asked, as request_access spells it: read, write or unmask:CLASS.</summary>
    public string AccessText => Unmask is null ? Access.ToPolicyString() : $"unmask:{Unmask}";

    /// <summary>What the request asks for, in words: "read public.payments, schema sales".</summary>
    public string Scope => Tables.Count + Schemas.Count == 0 ? "the connection" : string.Join(", ", Tables.Select(t => t.ToString()).Concat(Schemas.Select(s => $"schema {s}")));

    public static string NewId() => "req_" + Guid.CreateVersion7().ToString("N")[..20];

    /// <summary>
    /// Null when <paramref name="approver"/> may decide this request; the requester never may, through any channel, nor anyone
    /// twice, except to deny one they approved while it waits for more (how an approval is withdrawn: it ends the request).
    /// </summary>
    public string? RefuseApprover(string approver, Identity.AgentIdentity? verified = null, bool denying = false) =>
        ApproverRules.Requester(approver, verified, Agent, Subject, Issuer, DelegatedBy)
        ?? (Votes.Any(v => v.Approver == approver && (!denying || !v.Approve)) ? $"'{approver}' has already decided this request" : null);

    /// <summary>The approvers' decisions so far: one denial denies, <see cref="Required"/> approvals approve.</summary>
    public IReadOnlyList<ApprovalVote> Votes { get; init; } = [];

    /// <summary>How many approvals grant it: the policy's <c>approvals.required</c> when filed, or more if raised since.</summary>
    public int Required { get; init; } = 1;

    public int Approvals => Votes.Count(v => v.Approve);

    /// <summary>The person the requesting agent acts for (its token's delegation claim), who may not decide it either.</summary>
    public string? DelegatedBy { get; init; }

    /// <summary>
    /// The grant this request gives while approved and unexpired. An unmask right covers no relation of its own (a request
    /// stored before unmask requests were refused tables could still name some).
    /// </summary>
    public Grant ToGrant() =>
        new(Connection, Access, Unmask is null ? Schemas : [], Unmask is null ? Tables : []) { Source = $"request {Id}", ExpiresAt = GrantExpiresAt, Unmask = Unmask, DelegatedBy = DelegatedBy };
}
