using System.Security.Cryptography;
using System.Text;

namespace Gatehouse.Enforcement.Approvals;

/// <summary>Where a statement approval stands: pending → approved | denied | expired | cancelled; approved → running → used; approved → expired.</summary>
public enum StatementApprovalStatus
{
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,

    /// <summary>Claimed: the approved statement is running now.</summary>
    Running,
    Used,
}

/// <summary>One approver's decision on a request.</summary>
public sealed record ApprovalVote(string Approver, bool Approve, DateTimeOffset At, string? Note)
{
    /// <summary>
    /// A pending request's decisions with <paramref name="vote"/> added, the approvals now needed (the more of those it was filed
    /// with and <paramref name="required"/>, the policy in force's), and whether that decides it: one denial denies, the
    /// approval that makes the number needed approves (true), anything else leaves it pending (null).
    /// </summary>
    public static (List<ApprovalVote> Votes, int Needed, bool? Approved) Tally(IReadOnlyList<ApprovalVote> votes, ApprovalVote vote, int filedRequired, int required)
    {
        var all = votes.Append(vote).ToList();
        var needed = Math.Max(filedRequired, required);
        return (all, needed, !vote.Approve ? false : all.Count(v => v.Approve) >= needed ? true : null);
    }
}

/// <summary>
/// A request to run one exact statement that a guardrail sent to a human. It is bound to the identity, the connection, the
/// normalized statement and its parameters: anything else is a different request. An approval is single use and expires.
/// </summary>
/// <param name="ExpiresAt">While pending: when it expires undecided. Once approved: when the approval lapses unused.</param>
public sealed record StatementApproval(
    string Id,
    string Agent,
    string Subject,
    string Issuer,
    string Connection,
    string StatementHash,
    string ParametersHash,
    string Sql,
    string? Parameters,
    string Classification,
    string Rule,
    string Reason,
    int Required,
    StatementApprovalStatus Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset ExpiresAt)
{
    public IReadOnlyList<ApprovalVote> Votes { get; init; } = [];

    /// <summary>For a write: the rows a rolled-back dry run touched, shown to approvers and enforced on the approved run.</summary>
    public long? DryRunRows { get; init; }

    /// <summary>A few rows as the dry run left them (masked), as a stored result; null when there is none.</summary>
    public string? DryRunSample { get; init; }

    /// <summary>A result the requester has not received yet (its call ended before the run finished), until it is taken.</summary>
    public string? KeptResult { get; init; }

    public DateTimeOffset? KeptUntil { get; init; }

    /// <summary>The AI reviewer's summary for approvers, when one is configured and answered.</summary>
    public string? Review { get; init; }

    /// <summary>The person the requesting agent acts for (its token's delegation claim), who may not decide it either.</summary>
    public string? DelegatedBy { get; init; }

    public static string NewId() => "apr_" + Guid.CreateVersion7().ToString("N")[..20];

    /// <summary>A hash that binds a request to exact text.</summary>
    public static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    public int Approvals => Votes.Count(v => v.Approve);

    /// <summary>
    /// Null when <paramref name="approver"/> may decide; the requester never may (by name, or by the same issuer and subject
    /// when the channel verified a token), nor the person it acts for, nor anyone twice.
    /// </summary>
    public string? RefuseApprover(string approver, Identity.AgentIdentity? verified = null)
    {
        if (RefuseRequester(approver, verified) is { } refused)
        {
            return refused;
        }

        return Votes.Any(v => v.Approver == approver) ? $"'{approver}' has already decided this request" : null;
    }

    /// <summary>Null unless <paramref name="person"/> is the requester (or whom its agent acts for), who may not cancel it either.</summary>
    public string? RefuseRequester(string person, Identity.AgentIdentity? verified = null) =>
        ApproverRules.Requester(person, verified, Agent, Subject, Issuer, DelegatedBy);
}

/// <summary>What a waiting <c>query</c> hands back when no decision came in time: how to follow up.</summary>
public sealed record PendingApproval(string RequestId, IReadOnlyList<string> Approvers, int Required, int Approvals, DateTimeOffset ExpiresAt, long? DryRunRows, string Resume);

/// <summary>What the agent's operator answered when asked through the client.</summary>
public sealed record OperatorAnswer(bool Approve, string? Reason);

/// <summary>A step of a call that is waiting for a human, for progress notifications.</summary>
public sealed record WaitProgress(double Elapsed, double Total, string Message);
