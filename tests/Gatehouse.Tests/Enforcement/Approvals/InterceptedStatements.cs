using Gatehouse.Enforcement.Approvals;

namespace Gatehouse.Tests.Enforcement.Approvals;

/// <summary>A real statement-request store with a hook run once a vote or cancellation is stored, before the store returns.</summary>
internal sealed class InterceptedStatements(IStatementApprovalStore store) : IStatementApprovalStore
{
    /// <summary>Run once a vote or cancellation is stored; the call's own token is then checked, as a store would on its way back.</summary>
    public Action? AfterChange { get; set; }

    public ValueTask<StatementApproval?> VoteAsync(string id, ApprovalVote vote, int required, TimeSpan approvalLifetime, DateTimeOffset now, CancellationToken cancellationToken) =>
        InterceptedApprovals.StoredThen(store.VoteAsync(id, vote, required, approvalLifetime, now, cancellationToken), AfterChange, cancellationToken);

    public ValueTask<bool> CancelAsync(string id, string by, DateTimeOffset now, CancellationToken cancellationToken) =>
        InterceptedApprovals.StoredThen(store.CancelAsync(id, by, now, cancellationToken), AfterChange, cancellationToken);

    public ValueTask<StatementApproval?> FindLiveAsync(string agent, string? delegatedBy, string connection, string statementHash, string parametersHash, DateTimeOffset decidedSince, DateTimeOffset now, CancellationToken cancellationToken) =>
        store.FindLiveAsync(agent, delegatedBy, connection, statementHash, parametersHash, decidedSince, now, cancellationToken);

    public ValueTask<StatementFiling> CreateStatementAsync(StatementApproval request, int maxPending, DateTimeOffset decidedSince, CancellationToken cancellationToken) =>
        store.CreateStatementAsync(request, maxPending, decidedSince, cancellationToken);

    public ValueTask<StatementApproval?> GetStatementAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => store.GetStatementAsync(id, now, cancellationToken);

    public ValueTask<IReadOnlyList<StatementApproval>> ListStatementsAsync(bool all, DateTimeOffset now, CancellationToken cancellationToken) => store.ListStatementsAsync(all, now, cancellationToken);

    public ValueTask<int> CountPendingStatementsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) => store.CountPendingStatementsAsync(agent, now, cancellationToken);

    public ValueTask<IReadOnlyList<StatementApproval>> ListStatementsOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) =>
        store.ListStatementsOfAgentAsync(agent, limit, now, cancellationToken);

    public ValueTask<(StatementApproval? Request, bool Reopened)> RequireAsync(string id, int required, DateTimeOffset reopenedUntil, DateTimeOffset now, CancellationToken cancellationToken) =>
        store.RequireAsync(id, required, reopenedUntil, now, cancellationToken);

    public ValueTask<bool> ClaimAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => store.ClaimAsync(id, now, cancellationToken);

    public ValueTask SetReviewAsync(string id, string review, CancellationToken cancellationToken) => store.SetReviewAsync(id, review, cancellationToken);

    public ValueTask FinishRunAsync(string id, string? result, DateTimeOffset until, DateTimeOffset now, CancellationToken cancellationToken) =>
        store.FinishRunAsync(id, result, until, now, cancellationToken);

    public ValueTask<string?> TakeResultAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => store.TakeResultAsync(id, now, cancellationToken);
}
