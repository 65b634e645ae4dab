using Gatehouse.Enforcement.Policy;

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
public sealed class NotifyingApprovals(IApprovalStore access, IStatementApprovalStore statements, IApprovalNotifier notifier)
    : IApprovalStore, IStatementApprovalStore
{
    public async ValueTask CreateAsync(AccessRequest request, CancellationToken cancellationToken)
    {
        await access.CreateAsync(request, cancellationToken).ConfigureAwait(false);
        var what = $"{request.Access.ToPolicyString()} {string.Join(", ", request.Tables)} for {Durations.Format(request.Duration)}";
        notifier.Publish(new ApprovalEvent(
            "request.created", request.Id, "access", request.Agent, request.Connection, "pending", what, request.CreatedAt,
            $"Gatehouse: agent {request.Agent} asks for {what} on {request.Connection}: \"{request.Reason}\". Decide: gatehouse approvals approve|deny {request.Id}"));
    }

    public ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => access.GetAsync(id, now, cancellationToken);

    public ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken) =>
        access.ListAsync(status, now, cancellationToken);

    public async ValueTask<bool> DecideAsync(string id, bool approve, string decidedBy, string? note, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!await access.DecideAsync(id, approve, decidedBy, note, now, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        if (await access.GetAsync(id, now, cancellationToken).ConfigureAwait(false) is { } request)
        {
            var status = approve ? "approved" : "denied";
            notifier.Publish(new ApprovalEvent(
                "request.decided", id, "access", request.Agent, request.Connection, status, $"{request.Access.ToPolicyString()} {string.Join(", ", request.Tables)}", now,
                $"Gatehouse: {decidedBy} {status} {request.Agent}'s access request {id}{(note is null ? "" : $": \"{note}\"")}"));
        }

        return true;
    }

    public ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) =>
        access.RevokeAsync(id, revokedBy, now, cancellationToken);

    public ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        access.ActiveGrantsAsync(agent, now, cancellationToken);

    public ValueTask<StatementApproval?> FindLiveAsync(string agent, string connection, string statementHash, string parametersHash, DateTimeOffset decidedSince, DateTimeOffset now, CancellationToken cancellationToken) =>
        statements.FindLiveAsync(agent, connection, statementHash, parametersHash, decidedSince, now, cancellationToken);

    public async ValueTask CreateStatementAsync(StatementApproval request, CancellationToken cancellationToken)
    {
        await statements.CreateStatementAsync(request, cancellationToken).ConfigureAwait(false);
        var dryRun = request.DryRunRows is { } rows ? $" (a dry run touched {rows} row(s))" : "";
        notifier.Publish(new ApprovalEvent(
            "request.created", request.Id, "statement", request.Agent, request.Connection, "pending", request.Sql, request.CreatedAt,
            $"Gatehouse: agent {request.Agent} wants to run `{Clip(request.Sql)}` on {request.Connection}{dryRun}; {request.Rule}: {request.Reason}. Decide: gatehouse approvals approve|deny {request.Id}"));
    }

    public ValueTask<StatementApproval?> GetStatementAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => statements.GetStatementAsync(id, now, cancellationToken);

    public ValueTask<IReadOnlyList<StatementApproval>> ListStatementsAsync(bool all, DateTimeOffset now, CancellationToken cancellationToken) =>
        statements.ListStatementsAsync(all, now, cancellationToken);

    public async ValueTask<StatementApproval?> VoteAsync(string id, ApprovalVote vote, TimeSpan approvalLifetime, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var decided = await statements.VoteAsync(id, vote, approvalLifetime, now, cancellationToken).ConfigureAwait(false);
        if (decided is not null)
        {
            var status = decided.Status.ToString().ToLowerInvariant();
            notifier.Publish(new ApprovalEvent(
                "request.decided", id, "statement", decided.Agent, decided.Connection, status, decided.Sql, now,
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

    public ValueTask KeepResultAsync(string id, string result, DateTimeOffset until, CancellationToken cancellationToken) =>
        statements.KeepResultAsync(id, result, until, cancellationToken);

    public ValueTask<string?> TakeResultAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) => statements.TakeResultAsync(id, now, cancellationToken);

    private static string Clip(string sql) => sql.Length <= 300 ? sql : sql[..300] + "…";
}
