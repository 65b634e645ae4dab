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

    /// <summary>Run once a decision is stored, before the store returns; the decision's own token is then checked.</summary>
    public Action? AfterDecide { get; set; }

    public ValueTask<int> CreateAsync(AccessRequest request, int maxPending, CancellationToken cancellationToken) => store.CreateAsync(request, maxPending, cancellationToken);

    public ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        ReadsFail ? throw new TimeoutException("the store stopped answering") : store.GetAsync(id, now, cancellationToken);

    public ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken) => store.ListAsync(status, now, cancellationToken);

    public ValueTask<IReadOnlyList<AccessRequest>> ListOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) => store.ListOfAgentAsync(agent, limit, now, cancellationToken);

    public ValueTask<int> CountPendingAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) => store.CountPendingAsync(agent, now, cancellationToken);

    public async ValueTask<bool> DecideAsync(string id, bool approve, string decidedBy, string? note, TimeSpan maxGrant, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var decided = await store.DecideAsync(id, approve, decidedBy, note, maxGrant, now, cancellationToken);
        AfterDecide?.Invoke();
        cancellationToken.ThrowIfCancellationRequested();
        return decided;
    }

    public ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) => store.RevokeAsync(id, revokedBy, now, cancellationToken);

    public ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) => store.ActiveGrantsAsync(agent, now, cancellationToken);
}
