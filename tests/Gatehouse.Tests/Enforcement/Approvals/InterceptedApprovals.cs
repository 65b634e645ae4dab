using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Approvals;

/// <summary>
/// A real approval store with faults put in between its statements: reads of single requests that fail (a store that stops
/// answering), or something done once a decision is stored (a caller hanging up just then).
/// </summary>
internal sealed class InterceptedApprovals(IApprovalStore store) : IApprovalStore
{
    public bool ReadsFail { get; set; }

    /// <summary>Run once a decision or revocation is stored, before the store returns; the call's own token is then checked.</summary>
    public Action? AfterChange { get; set; }

    public ValueTask<int> CreateAsync(AccessRequest request, int maxPending, CancellationToken cancellationToken) => store.CreateAsync(request, maxPending, cancellationToken);

    public ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        ReadsFail ? throw new TimeoutException("the store stopped answering") : store.GetAsync(id, now, cancellationToken);

    public ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken) => store.ListAsync(status, now, cancellationToken);

    public ValueTask<IReadOnlyList<AccessRequest>> ListOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) => store.ListOfAgentAsync(agent, limit, now, cancellationToken);

    public ValueTask<int> CountPendingAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) => store.CountPendingAsync(agent, now, cancellationToken);

    public ValueTask<bool> DecideAsync(string id, ApprovalVote vote, int required, TimeSpan maxGrant, DateTimeOffset now, CancellationToken cancellationToken) =>
        StoredThen(store.DecideAsync(id, vote, required, maxGrant, now, cancellationToken), AfterChange, cancellationToken);

    public ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) =>
        StoredThen(store.RevokeAsync(id, revokedBy, now, cancellationToken), AfterChange, cancellationToken);

    /// <summary>A store's change, then <paramref name="after"/>, then the call's own token checked, as a store would on its way back.</summary>
    internal static async ValueTask<T> StoredThen<T>(ValueTask<T> change, Action? after, CancellationToken cancellationToken)
    {
        var result = await change;
        after?.Invoke();
        cancellationToken.ThrowIfCancellationRequested();
        return result;
    }

    public ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) => store.ActiveGrantsAsync(agent, now, cancellationToken);
}
