using Gatehouse.Enforcement.Policy;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Enforcement.Approvals;

/// <summary>Something an approver should hear about: a new request, or a decision on one.</summary>
/// <param name="Event">request.created or request.decided.</param>
/// <param name="Text">One line for people (a Slack-compatible message).</param>
public sealed record ApprovalEvent(string Event, string RequestId, string Kind, string Agent, string Connection, string Status, string What, DateTimeOffset At, string Text);

/// <summary>Tells approvers about requests and decisions. Publishing never blocks and never fails the request it is about.</summary>
public interface IApprovalNotifier
{
    void Publish(ApprovalEvent approvalEvent);
}

/// <summary>
/// The approval stores, telling approvers (webhooks) whenever a request is filed or decided. The store's answer comes first:
/// a notification is sent only after the change is durable, and its failure changes nothing.
/// </summary>
public sealed partial class NotifyingApprovals(IApprovalStore access, IStatementApprovalStore statements, IApprovalNotifier notifier)
    : IApprovalStore, IStatementApprovalStore
{
    /// <summary>The optional AI reviewer, asked in the background about each new statement request.</summary>
    public ApprovalReviewer? Reviewer { get; init; }

    /// <summary>Where a failing reviewer, or a decision that could not be read back for its notification, is reported.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    public async ValueTask<int> CreateAsync(AccessRequest request, int maxPending, CancellationToken cancellationToken)
    {
        var pending = await access.CreateAsync(request, maxPending, cancellationToken).ConfigureAwait(false);
        if (pending >= maxPending)
        {
            return pending;
        }

        var what = $"{request.AccessText} {request.Scope} for {Durations.Format(request.Duration)}";
        notifier.Publish(new ApprovalEvent(
            "request.created", request.Id, "access", request.Agent, request.Connection, "pending", what, request.CreatedAt,
            $"Gatehouse: agent {request.Agent} asks for {what} on {request.Connection}: \"{Outbound(request.Reason)}\". Decide: gatehouse approvals approve|deny {request.Id}"));
        return pending;
    }

    public ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => access.GetAsync(id, now, cancellationToken);

    public ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken) =>
        access.ListAsync(status, now, cancellationToken);

    public ValueTask<IReadOnlyList<AccessRequest>> ListOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) =>
        access.ListOfAgentAsync(agent, limit, now, cancellationToken);

    public ValueTask<int> CountPendingAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) => access.CountPendingAsync(agent, now, cancellationToken);

    public async ValueTask<bool> DecideAsync(string id, ApprovalVote vote, int required, TimeSpan maxGrant, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!await access.DecideAsync(id, vote, required, maxGrant, now, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        // The decision is stored: a failure to read it back for the notification must not report it as failed (the caller
        // would record no decision, and a retry would find the request no longer pending).
        AccessRequest? request;
        try
        {
            // Not cancellable either: a cancellation now would report the stored decision as failed all the same.
            request = await access.GetAsync(id, now, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (StateUnavailableException.IsStoreFailure(e) || e is StateUnavailableException)
        {
            NotificationUnread(Logger, e, id);
            return true;
        }

        if (request is not null)
        {
            var status = request.Status.ToString().ToLowerInvariant();
            notifier.Publish(new ApprovalEvent(
                "request.decided", id, "access", request.Agent, request.Connection, status, $"{request.AccessText} {request.Scope}", now,
                $"Gatehouse: {vote.Approver} {(vote.Approve ? "approved" : "denied")} {request.Agent}'s access request {id}{(vote.Note is null ? "" : $": \"{vote.Note}\"")}"
                + $" ({request.Approvals} of {request.Required} approvals; now {status})"));
        }

        return true;
    }

    public ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) =>
        access.RevokeAsync(id, revokedBy, now, cancellationToken);

    public ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        access.ActiveGrantsAsync(agent, now, cancellationToken);

    public ValueTask<StatementApproval?> FindLiveAsync(string agent, string? delegatedBy, string connection, string statementHash, string parametersHash, DateTimeOffset decidedSince, DateTimeOffset now, CancellationToken cancellationToken) =>
        statements.FindLiveAsync(agent, delegatedBy, connection, statementHash, parametersHash, decidedSince, now, cancellationToken);

    public async ValueTask<StatementFiling> CreateStatementAsync(StatementApproval request, int maxPending, DateTimeOffset decidedSince, CancellationToken cancellationToken)
    {
        var filing = await statements.CreateStatementAsync(request, maxPending, decidedSince, cancellationToken).ConfigureAwait(false);
        if (!filing.Filed(maxPending))
        {
            return filing;
        }

        var dryRun = request.DryRunRows is { } rows ? $" (a dry run touched {rows} row(s))" : "";
        var sql = Outbound(request.Sql);
        notifier.Publish(new ApprovalEvent(
            "request.created", request.Id, "statement", request.Agent, request.Connection, "pending", sql, request.CreatedAt,
            $"Gatehouse: agent {request.Agent} wants to run `{Clip(sql)}` on {request.Connection}{dryRun}; {request.Rule}: {request.Reason}. Decide: gatehouse approvals approve|deny {request.Id}"));
        if (Reviewer is not null)
        {
            _ = Task.Run(() => ReviewAsync(Reviewer, request), CancellationToken.None);
        }

        return filing;
    }

    public ValueTask SetReviewAsync(string id, string review, CancellationToken cancellationToken) => statements.SetReviewAsync(id, review, cancellationToken);

    // In the background: the request is already filed and waiting; a slow or failing model changes nothing about it.
    private async Task ReviewAsync(ApprovalReviewer reviewer, StatementApproval request)
    {
        try
        {
            if (await reviewer.ReviewAsync(request, CancellationToken.None).ConfigureAwait(false) is { } review)
            {
                await statements.SetReviewAsync(request.Id, review, CancellationToken.None).ConfigureAwait(false);
                notifier.Publish(new ApprovalEvent(
                    "request.reviewed", request.Id, "statement", request.Agent, request.Connection, "pending", Outbound(request.Sql), DateTimeOffset.UtcNow,
                    $"Gatehouse reviewer on {request.Id}: {review}"));
            }
        }
        catch (Exception e)
        {
            ReviewFailed(Logger, e, request.Id);
        }
    }

    public ValueTask<StatementApproval?> GetStatementAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => statements.GetStatementAsync(id, now, cancellationToken);

    public ValueTask<IReadOnlyList<StatementApproval>> ListStatementsAsync(bool all, DateTimeOffset now, CancellationToken cancellationToken) =>
        statements.ListStatementsAsync(all, now, cancellationToken);

    public ValueTask<int> CountPendingStatementsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        statements.CountPendingStatementsAsync(agent, now, cancellationToken);

    public ValueTask<IReadOnlyList<StatementApproval>> ListStatementsOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) =>
        statements.ListStatementsOfAgentAsync(agent, limit, now, cancellationToken);

    public async ValueTask<StatementApproval?> VoteAsync(string id, ApprovalVote vote, int required, TimeSpan approvalLifetime, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var decided = await statements.VoteAsync(id, vote, required, approvalLifetime, now, cancellationToken).ConfigureAwait(false);
        if (decided is not null)
        {
            var status = decided.Status.ToString().ToLowerInvariant();
            notifier.Publish(new ApprovalEvent(
                "request.decided", id, "statement", decided.Agent, decided.Connection, status, Outbound(decided.Sql), now,
                $"Gatehouse: {vote.Approver} {(vote.Approve ? "approved" : "denied")} {decided.Agent}'s statement {id} ({decided.Approvals} of {decided.Required} approvals; now {status})"));
        }

        return decided;
    }

    public async ValueTask<bool> CancelAsync(string id, string by, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!await statements.CancelAsync(id, by, now, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        notifier.Publish(new ApprovalEvent("request.decided", id, "statement", "", "", "cancelled", "", now, $"Gatehouse: {by} cancelled statement request {id}"));
        return true;
    }

    public ValueTask<bool> ClaimAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => statements.ClaimAsync(id, now, cancellationToken);

    public async ValueTask<(StatementApproval? Request, bool Reopened)> RequireAsync(string id, int required, DateTimeOffset reopenedUntil, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var (after, reopened) = await statements.RequireAsync(id, required, reopenedUntil, now, cancellationToken).ConfigureAwait(false);
        if (reopened && after is not null)
        {
            // Its approvers last heard it was approved.
            notifier.Publish(new ApprovalEvent(
                "request.reopened", id, "statement", after.Agent, after.Connection, "pending", Outbound(after.Sql), now,
                $"Gatehouse: {after.Agent}'s statement {id} was approved, but the policy now asks {after.Required} approvals and it has {after.Approvals}; it waits for the rest"));
        }

        return (after, reopened);
    }

    public ValueTask FinishRunAsync(string id, string? result, DateTimeOffset until, DateTimeOffset now, CancellationToken cancellationToken) =>
        statements.FinishRunAsync(id, result, until, now, cancellationToken);

    public ValueTask<string?> TakeResultAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => statements.TakeResultAsync(id, now, cancellationToken);

    [LoggerMessage(21, LogLevel.Warning, "The decision on access request {RequestId} is stored, but reading it back failed, so approvers are not notified of it")]
    private static partial void NotificationUnread(ILogger logger, Exception exception, string requestId);

    [LoggerMessage(20, LogLevel.Warning, "The AI reviewer could not review request {RequestId}; approvers decide without its summary")]
    private static partial void ReviewFailed(ILogger logger, Exception exception, string requestId);

    // A webhook leaves for a third party (a chat channel): values in the SQL, or in an agent's reason, pass the detectors first.
    private static string Outbound(string text) => Masking.ContentDetectors.Mask(text, new Masking.MaskingCounts());

    private static string Clip(string sql) => sql.Length <= 300 ? sql : sql[..300] + "…";
}
