using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Approvals;

/// <summary>Durable access requests and the time-boxed grants their approvals create.</summary>
public interface IApprovalStore
{
    /// <summary>
    /// Files <paramref name="request"/> unless its agent already has <paramref name="maxPending"/> access requests waiting,
    /// counted and filed at once (two filings at the same moment cannot both take the last place); returns how many were waiting.
    /// </summary>
    ValueTask<int> CreateAsync(AccessRequest request, int maxPending, CancellationToken cancellationToken);

    ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The newest <paramref name="limit"/> requests of <paramref name="agent"/>, of any status, newest first.</summary>
    ValueTask<IReadOnlyList<AccessRequest>> ListOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>How many requests of <paramref name="agent"/> are waiting for a decision.</summary>
    ValueTask<int> CountPendingAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Adds an approver's decision to a pending request, atomically: a denial denies it, the approval that makes the more of its
    /// own <c>Required</c> and <paramref name="required"/> (the policy in force may ask more than when it was filed) approves
    /// it. False when nothing changed: the request is not pending (or is unknown), or the approver is its requester or has
    /// already decided it. An approved grant lasts the duration asked, but no longer than <paramref name="maxGrant"/>, the most
    /// the policy in force allows.
    /// </summary>
    ValueTask<bool> DecideAsync(string id, ApprovalVote vote, int required, TimeSpan maxGrant, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Ends an approved request's grant now; false when it is not an active grant.</summary>
    ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The grants (table access, or a class to unmask) from approved requests of <paramref name="agent"/> that have not yet expired.</summary>
    ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken);
}
