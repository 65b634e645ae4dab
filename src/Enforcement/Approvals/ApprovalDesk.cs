using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Approvals;

/// <summary>The outcome of an approver's action: done (with a sentence saying what changed), or refused and why.</summary>
/// <param name="NotFound">No such request or grant.</param>
/// <param name="Forbidden">This person may not do this (not an approver, or the requester), as against a request whose state does not allow it.</param>
public sealed record DeskOutcome(bool Done, string Message, bool NotFound = false, bool Forbidden = false)
{
    public static DeskOutcome Refused(string message) => new(false, message);

    public static DeskOutcome NotAllowed(string message) => new(false, message, Forbidden: true);

    public static DeskOutcome Missing(string id) => new(false, $"no request with id '{id}'", NotFound: true);
}

/// <summary>
/// What an approver can do, whatever the channel (CLI, admin API): decide a request, cancel a statement request, revoke a
/// grant. Enforces who may decide, and records every action in the audit log: who, when, through which channel, and why.
/// The caller's cancellation (a console that hangs up) stops an action only before its change is sent to the store: from
/// there on, cancelled part-way, the change could be stored and never recorded.
/// </summary>
public sealed class ApprovalDesk(LivePolicy livePolicy, NotifyingApprovals approvals, IAuditStore audit, TimeProvider time)
{
    /// <param name="verified">The decider's verified token identity, when the channel has one (the admin API): its groups count, and
    /// its issuer and subject are compared with the requester's.</param>
    public async Task<DeskOutcome> DecideAsync(string id, string who, AgentIdentity? verified, bool approve, string? note, string channel, CancellationToken cancellationToken)
    {
        var outcome = id.StartsWith("apr_", StringComparison.Ordinal)
            ? await VoteAsync(id, who, verified, approve, note, cancellationToken).ConfigureAwait(false)
            : await DecideAccessAsync(id, who, verified, approve, note, cancellationToken).ConfigureAwait(false);
        return await RecordAsync(outcome, approve ? "approve" : "deny", who, id, note, channel, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Cancels a pending statement request: a decision too, so only an approver may (with approvers named).</summary>
    public async Task<DeskOutcome> CancelAsync(string id, string who, AgentIdentity? verified, string channel, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var outcome = await approvals.GetStatementAsync(id, now, cancellationToken).ConfigureAwait(false) switch
        {
            null when !id.StartsWith("apr_", StringComparison.Ordinal) && await approvals.GetAsync(id, now, cancellationToken).ConfigureAwait(false) is not null =>
                DeskOutcome.Refused($"{id} is an access request; cancel applies to statement requests (apr_…): deny it instead"),
            null => DeskOutcome.Missing(id),
            // The requester (or the person its agent acts for) no more cancels its request than approves it.
            // An approver who has voted may still cancel: it is how one withdraws an approval given before the rest.
            var request when (request.RefuseRequester(who, verified) ?? livePolicy.Current.Approvals.RefuseApprover(who, verified?.Groups ?? [])) is { } refusal =>
                DeskOutcome.NotAllowed(refusal),
            var request when !await approvals.CancelAsync(id, who, now, CancellationToken.None).ConfigureAwait(false) => NotPending(id, request.Status.ToString()),
            _ => new DeskOutcome(true, $"Cancelled {id}."),
        };
        return await RecordAsync(outcome, "cancel", who, id, null, channel, cancellationToken).ConfigureAwait(false);
    }

    public async Task<DeskOutcome> RevokeAsync(string id, string who, string channel, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var now = time.GetUtcNow();
        var outcome = await approvals.RevokeAsync(id, who, now, CancellationToken.None).ConfigureAwait(false)
            ? new DeskOutcome(true, $"Revoked the grant of {id}.")
            : await approvals.GetAsync(id, now, CancellationToken.None).ConfigureAwait(false) is { } request
                ? DeskOutcome.Refused($"'{id}' is not an active grant (it is {request.Status.ToString().ToLowerInvariant()}); nothing changed")
                : DeskOutcome.Missing(id);
        return await RecordAsync(outcome, "revoke", who, id, null, channel, cancellationToken).ConfigureAwait(false);
    }

    private async Task<DeskOutcome> VoteAsync(string id, string who, AgentIdentity? verified, bool approve, string? note, CancellationToken cancellationToken)
    {
        var policy = livePolicy.Current;
        var now = time.GetUtcNow();
        var request = await approvals.GetStatementAsync(id, now, cancellationToken).ConfigureAwait(false);
        if (request is null)
        {
            return DeskOutcome.Missing(id);
        }

        if ((request.RefuseApprover(who, verified) ?? policy.Approvals.RefuseApprover(who, verified?.Groups ?? [])) is { } refusal)
        {
            return DeskOutcome.NotAllowed(refusal);
        }

        var decided = await approvals.VoteAsync(id, new ApprovalVote(who, approve, now, note), policy.Approvals.Required, policy.Approvals.ApprovalLifetime, now, CancellationToken.None).ConfigureAwait(false);
        return decided is null ? NotPending(id, request.Status.ToString()) : new DeskOutcome(true, Voted(decided, who));
    }

    /// <summary>What a vote that counted did to its statement request, whichever channel it came through.</summary>
    internal static string Voted(StatementApproval decided, string who) => decided.Status switch
    {
        StatementApprovalStatus.Approved => $"Approved {decided.Id}: {decided.Agent} may run it once, until {decided.ExpiresAt:u}.",
        StatementApprovalStatus.Denied => $"Denied {decided.Id}.",
        _ => PartlyApproved(who, decided.Id, decided.Approvals, decided.Required),
    };

    private static string PartlyApproved(string who, string id, int approvals, int required) => $"Recorded {who}'s approval of {id}: {approvals} of {required} so far.";

    private async Task<DeskOutcome> DecideAccessAsync(string id, string who, AgentIdentity? verified, bool approve, string? note, CancellationToken cancellationToken)
    {
        var policy = livePolicy.Current;
        var now = time.GetUtcNow();
        var request = await approvals.GetAsync(id, now, cancellationToken).ConfigureAwait(false);
        if (request is null)
        {
            return DeskOutcome.Missing(id);
        }

        if ((request.RefuseApprover(who, verified, denying: !approve) ?? policy.Approvals.RefuseAccessApprover(who, verified?.Groups ?? [])) is { } refusal)
        {
            return DeskOutcome.NotAllowed(refusal);
        }

        if (!await approvals.DecideAsync(id, new ApprovalVote(who, approve, now, note), policy.Approvals.RequiredForAccess, policy.Approvals.MaxGrant, now, CancellationToken.None).ConfigureAwait(false))
        {
            // Pending when read above: decided, expired or decided by the same person meanwhile (two clicks at once).
            return request.Status == AccessRequestStatus.Pending
                ? DeskOutcome.Refused($"request {id} changed while this decision was made (decided, expired, or already decided by {who}); nothing changed")
                : NotPending(id, request.Status.ToString());
        }

        // Read back for the grant's end. The decision is stored: a store that fails now must not keep it off the record, so the
        // message then does without the end.
        AccessRequest? decided;
        try
        {
            decided = await approvals.GetAsync(id, now, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            decided = null;
        }

        var setup = approve && policy.Connections.TryGetValue(request.Connection, out var connection) && Masking.DatabaseProfiles.Apply(connection)
            ? $" Connection {request.Connection} masks in the database: run gatehouse setup --connection {request.Connection} so PostgreSQL has a profile for the widened rights."
            : "";
        // An approval short of those required leaves the request pending, for the rest.
        if (approve && (decided is { Status: AccessRequestStatus.Pending } || (decided is null && Math.Max(request.Required, policy.Approvals.RequiredForAccess) > 1)))
        {
            return new DeskOutcome(true, decided is null
                ? $"Recorded {who}'s approval of {request.Id} (the state store could not be read back for how many it has now)."
                : PartlyApproved(who, request.Id, decided.Approvals, decided.Required));
        }

        var until = decided is null ? " (the state store could not be read back for when the grant ends)" : $" until {decided.GrantExpiresAt:u}";
        return new DeskOutcome(true, approve
            ? $"Approved {request.Id}: {request.Agent} may {request.AccessText} {request.Scope} on {request.Connection}{until}.{setup}"
            : $"Denied {request.Id}.");
    }

    private static DeskOutcome NotPending(string id, string status) => DeskOutcome.Refused($"request {id} is {status.ToLowerInvariant()}, not pending; nothing changed");

    // Refusals are recorded too: an attempt to approve one's own request is worth knowing about.
    private async Task<DeskOutcome> RecordAsync(DeskOutcome outcome, string verb, string who, string id, string? note, string channel, CancellationToken cancellationToken)
    {
        await audit.RecordAsync(
            time.GetUtcNow(), $"approvals {verb}", channel, who, id, outcome.Done, outcome.Done ? $"approval.{verb}" : "approval.refused",
            note is null ? outcome.Message : $"{outcome.Message} Reason given: {note}").ConfigureAwait(false);
        return outcome;
    }
}
