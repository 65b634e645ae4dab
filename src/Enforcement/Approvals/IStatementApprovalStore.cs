namespace Gatehouse.Enforcement.Approvals;

/// <summary>Durable statement approvals, shared by every gateway process on the same store. Expiry is applied on read.</summary>
public interface IStatementApprovalStore
{
    /// <summary>
    /// The current request for exactly this statement of this agent: pending, approved and unused, used with a result not yet
    /// delivered, or denied or cancelled since <paramref name="decidedSince"/> (so the agent hears the answer). Null when there
    /// is none: used and expired requests are history, and the next call files a new one.
    /// </summary>
    ValueTask<StatementApproval?> FindLiveAsync(string agent, string? delegatedBy, string connection, string statementHash, string parametersHash, DateTimeOffset decidedSince, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Files <paramref name="request"/> unless its agent already has <paramref name="maxPending"/> statement requests waiting,
    /// counted and filed at once (two filings at the same moment cannot both take the last place). Files nothing when a
    /// request for exactly the same statement (agent, person, connection, statement and parameters) is already pending,
    /// approved or running, or was denied or cancelled since <paramref name="decidedSince"/>, as when two calls send it at the
    /// same moment: that request is returned, for this call to wait on or report.
    /// </summary>
    ValueTask<StatementFiling> CreateStatementAsync(StatementApproval request, int maxPending, DateTimeOffset decidedSince, CancellationToken cancellationToken);

    ValueTask<StatementApproval?> GetStatementAsync(string id, DateTimeOffset now, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<StatementApproval>> ListStatementsAsync(bool all, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>How many statement requests of <paramref name="agent"/> are waiting for a decision.</summary>
    ValueTask<int> CountPendingStatementsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The newest <paramref name="limit"/> statement requests of <paramref name="agent"/>, of any status, newest first.</summary>
    ValueTask<IReadOnlyList<StatementApproval>> ListStatementsOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Adds a decision to a pending request, atomically: a denial denies it, the approval that makes the more of its own
    /// <c>Required</c> and <paramref name="required"/> (the policy in force may ask more than when it was filed) approves it
    /// until <paramref name="now"/> + <paramref name="approvalLifetime"/>. Null when nothing changed: the request is not pending (or is
    /// unknown), or the approver is its requester or has already decided it.
    /// </summary>
    ValueTask<StatementApproval?> VoteAsync(string id, ApprovalVote vote, int required, TimeSpan approvalLifetime, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Raises a pending or approved request's approvals needed to <paramref name="required"/> (the policy in force asks more
    /// than when it was filed); one approved with fewer is pending again, for the rest, until at least
    /// <paramref name="reopenedUntil"/>. Returns the request as it now stands, and whether this turned it from approved to pending.
    /// </summary>
    ValueTask<(StatementApproval? Request, bool Reopened)> RequireAsync(string id, int required, DateTimeOffset reopenedUntil, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Cancels a pending request; false when it is no longer pending.</summary>
    ValueTask<bool> CancelAsync(string id, string by, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Uses an approval: approved → running, once, across processes. False when it is not (or no longer) approved.</summary>
    ValueTask<bool> ClaimAsync(string id, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Attaches the AI reviewer's summary to a request.</summary>
    ValueTask SetReviewAsync(string id, string review, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a run: running → used, keeping <paramref name="result"/> (if any: the caller had gone) for its requester until
    /// <paramref name="until"/>; and deletes every kept result whose time has passed by <paramref name="now"/>, which may
    /// hold values a caller saw unmasked.
    /// </summary>
    ValueTask FinishRunAsync(string id, string? result, DateTimeOffset until, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Hands over a kept result exactly once; null when there is none (taken, expired, never kept).</summary>
    ValueTask<string?> TakeResultAsync(string id, DateTimeOffset now, CancellationToken cancellationToken);
}

/// <summary>What filing a statement request did: how many of its agent's were already waiting, or the same request it joined.</summary>
public readonly record struct StatementFiling(int Pending, StatementApproval? Joined = null)
{
    /// <summary>Whether the request was filed: it joined none, and the cap had room.</summary>
    public bool Filed(int maxPending) => Joined is null && Pending < maxPending;
}
