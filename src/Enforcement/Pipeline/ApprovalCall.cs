using System.Text.Json;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Enforcement.Quotas;

namespace Gatehouse.Enforcement.Pipeline;

public sealed partial class GatewayPipeline
{
    private static readonly TimeSpan ApprovalPoll = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(3);

    /// <summary>
    /// A statement a guardrail sends to a human. The call finds (or files) the request bound to exactly this identity, connection,
    /// statement and parameters, waits for the decision while reporting progress, and runs the statement once, when approved.
    /// A call that comes back later for the same statement picks up the decision, or the result its earlier call missed.
    /// <paramref name="rights"/> describes the caller's grants and unmask rights as judged: the run, and a kept result's
    /// hand-over, need them unchanged.
    /// </summary>
    private async ValueTask<StepResult> WithApprovalAsync(
        StatementRun run, Decision guard, StatementText statement, CallContext call, string rights, CancellationToken cancellationToken)
    {
        var settings = run.Scope.Policy.Approvals;
        var identity = run.Scope.Identity;
        var execution = run.Execution;
        var key = RequestKey.Of(execution, statement);
        var request = await FindRequestAsync(run, key, cancellationToken).ConfigureAwait(false);

        if (request is { Status: StatementApprovalStatus.Used })
        {
            var kept = await StateUnavailableException.GuardAsync(
                "hand over this statement's kept result", () => statementApprovals.TakeResultAsync(request.Id, time.GetUtcNow(), cancellationToken)).ConfigureAwait(false);
            if (kept is null)
            {
                return new StepResult(Decision.Deny("approval.used", $"request {request.Id} has already run and its result was delivered; an approval is good for one run"), Classification: run.Classification);
            }

            // Masked under the rights of its run: a revoked unmask right must not come back through a result kept from before.
            return QueryResultCodec.Rights(kept) == rights
                ? Delivered(QueryResultCodec.Read(kept), Decision.Allow("approval.result", $"the result of approved request {request.Id}, which ran after your earlier call ended"), run.Classification)
                : new StepResult(
                    Decision.Deny("approval.rights_changed", $"request {request.Id} ran after your earlier call ended, but this agent's grants or unmask rights on connection '{execution.Connection}', or the connection's tags or masking strategies, have changed since, so the result kept from that run was discarded, not handed over; its outcome is in the audit log, and the approval is spent"),
                    Classification: run.Classification);
        }

        if (request is { Status: StatementApprovalStatus.Running })
        {
            return new StepResult(RunningNow(request), Classification: run.Classification);
        }

        // The catalog the statement was judged against: read now if it was not known then, before the dry run, the filing
        // and the wait, so a DDL committed meanwhile (one queued behind the dry run's locks) is seen before the approved run.
        var catalogBefore = run.CatalogVersion ?? await CatalogVersionAsync(execution.Connection, cancellationToken).ConfigureAwait(false);

        if (request is null)
        {
            StepResult TooMany(int pending, string outcome) => new(
                Decision.Deny("approval.too_many_pending", $"{guard.Reason}, and agent '{identity.Agent}' already has {pending} statements waiting for an approver, the most one agent may have; wait for decisions (request_access with status_only lists them) before sending more. {outcome}"),
                Classification: run.Classification);

            // Counted first so that a write over the cap is not dry-run for nothing; the filing below counts again, at once.
            var pending = await StateUnavailableException.GuardAsync(
                "count this agent's pending requests", () => statementApprovals.CountPendingStatementsAsync(identity.Agent, time.GetUtcNow(), cancellationToken)).ConfigureAwait(false);
            if (pending >= MaxPendingRequests)
            {
                return TooMany(pending, execution.ReadOnly ? "Nothing was run or filed" : "Nothing was filed, and nothing was written");
            }

            var (counted, sample) = execution.ReadOnly ? (null, null) : await DryRunAsync(run, statement, cancellationToken).ConfigureAwait(false);
            var dryRun = counted?.WriteRows;

            // Rows past the write limit, or matching a deny rule (by the tables it wrote too), refuse the write whatever an
            // approver would say: no request.
            var bound = dryRun is { } touched ? run.WriteBound?.Invoke(touched, counted!) : null;
            if (bound is { NeedsApproval: false } refused)
            {
                return new StepResult(refused, Classification: run.Classification);
            }

            // A dry run that met a require_approval rule its plan did not (its cascade or trigger wrote a table under another
            // rule): filed under the plan's rule, with that one's reason too, so approvers read what the write would reach
            // (the first such rule in the policy's order that its plan does not meet).
            var reason = bound is { } also && also.Rule != guard.Rule ? $"{guard.Reason}; its dry run also met {also.Rule}: {also.Reason}" : guard.Reason;

            var now = time.GetUtcNow();
            request = new StatementApproval(
                StatementApproval.NewId(), identity.Agent, identity.Subject, identity.Issuer, execution.Connection, key.StatementHash, key.ParametersHash,
                execution.Sql, key.Parameters, run.Classification, guard.Rule, reason, settings.Required, StatementApprovalStatus.Pending, now, now + settings.PendingLifetime)
            {
                DryRunRows = dryRun,
                DryRunSample = sample,
                DelegatedBy = identity.DelegatedBy,
            };
            var filed = request;
            var filing = await StateUnavailableException.GuardAsync(
                "file this statement's approval request", () => statementApprovals.CreateStatementAsync(filed, MaxPendingRequests, now - settings.PendingLifetime, cancellationToken)).ConfigureAwait(false);
            if (filing.Joined is { } joined)
            {
                // A call sending the same statement at the same moment filed it first: this call waits on that request.
                request = joined;
            }
            else if (filing.Pending >= MaxPendingRequests)
            {
                // Another of its statements took the last place while this one's dry run ran.
                return TooMany(filing.Pending, execution.ReadOnly ? "Nothing was run or filed" : "Nothing was filed; its dry run ran and was rolled back");
            }
        }

        if (request.Required < settings.Required && request.Status is StatementApprovalStatus.Pending or StatementApprovalStatus.Approved)
        {
            // Filed (or approved) when the policy asked fewer approvals than it does now: it needs as many as a request filed now.
            var id = request.Id;
            request = (await StateUnavailableException.GuardAsync(
                "raise this statement's approvals needed",
                () => statementApprovals.RequireAsync(id, settings.Required, time.GetUtcNow() + settings.PendingLifetime, time.GetUtcNow(), cancellationToken)).ConfigureAwait(false)).Request ?? request;
        }

        run.Scope.Describe(r => r with { Classification = $"{run.Classification} [approval {request.Id}]" });
        request = await AwaitDecisionAsync(settings, request, call, cancellationToken).ConfigureAwait(false);
        var who = string.Join(", ", request.Votes.Select(v => v.Approver));
        var note = string.Join("; ", request.Votes.Where(v => v.Note is not null).Select(v => $"{v.Approver}: {v.Note}"));
        switch (request.Status)
        {
            case StatementApprovalStatus.Approved:
                if (!ReferenceEquals(livePolicy.Current, run.Scope.Policy))
                {
                    // Judged under a policy no longer in force: the approval stays, the statement is judged again.
                    return new StepResult(
                        Decision.Deny("approval.policy_changed", $"request {request.Id} was approved, but the policy changed while this call waited, so nothing was run. Call query again with the same statement and parameters: it is judged under the policy in force and, if that still allows it, runs on this approval"),
                        Classification: run.Classification);
                }

                if (await StillEntitledAsync(run.Scope, execution.Connection, rights, catalogBefore, cancellationToken).ConfigureAwait(false) is { } lapsed)
                {
                    return new StepResult(lapsed with { Reason = $"{lapsed.Reason} (request {request.Id} stays approved)" }, Classification: run.Classification);
                }

                // Held before the approval is claimed: a quota with nothing left refuses the run and leaves the approval unspent.
                var quota = HoldQuota(run);
                if (quota?.Refusal is { } overQuota)
                {
                    return new StepResult(overQuota with { Reason = $"{overQuota.Reason} (request {request.Id} stays approved)" }, Classification: run.Classification);
                }

                var id = request.Id;
                if (!await StateUnavailableException.GuardAsync("claim this statement's approval", () => statementApprovals.ClaimAsync(id, time.GetUtcNow(), cancellationToken)).ConfigureAwait(false))
                {
                    return new StepResult(Decision.Deny("approval.used", $"request {request.Id} was approved but has already been used or has lapsed; an approval is good for one run"), Classification: run.Classification);
                }

                return await RunApprovedAsync(run, request, who, rights, quota?.Caps, cancellationToken).ConfigureAwait(false);
            case StatementApprovalStatus.Denied:
                return new StepResult(Decision.Deny("approval.denied", $"request {request.Id} was denied by {who}{(note.Length > 0 ? $" ({note})" : "")}; nothing was run. The same statement can be asked for again after {request.CreatedAt + settings.PendingLifetime:u}"), Classification: run.Classification);
            case StatementApprovalStatus.Cancelled:
                return new StepResult(Decision.Deny("approval.cancelled", $"request {request.Id} was cancelled; nothing was run. The same statement can be asked for again after {request.CreatedAt + settings.PendingLifetime:u}"), Classification: run.Classification);
            case StatementApprovalStatus.Expired:
                return new StepResult(Decision.Deny("approval.expired", $"request {request.Id} expired before it was used; nothing was run. Calling query again files a new request"), Classification: run.Classification);
            case StatementApprovalStatus.Running:
                // Approved while this call waited, and claimed by another call of this agent with the same statement.
                return new StepResult(RunningNow(request), Classification: run.Classification);
            case StatementApprovalStatus.Used:
                return new StepResult(
                    Decision.Deny("approval.used", $"request {request.Id} was approved while this call waited and has been run by another call of this agent with the same statement; this call ran nothing. An approval is good for one run"),
                    Classification: run.Classification);
            default:
                var approvers = Approvers(settings);
                return new StepResult(
                    Decision.Deny(
                        "approval.pending",
                        $"{request.Reason}. Request {request.Id} waits for {approvers} ({request.Approvals} of {request.Required} approvals so far)"
                        + (request.DryRunRows is { } rows ? $"; a dry run touched {rows} row(s)" : "")
                        + $". Call query again with the same statement and parameters to run it once approved (until {request.ExpiresAt:u}); nothing has run yet"),
                    new PendingApproval(request.Id, settings.Approvers, request.Required, request.Approvals, request.ExpiresAt, request.DryRunRows, "call query again with the same sql and params"),
                    Classification: run.Classification);
        }
    }

    private static Decision RunningNow(StatementApproval request) =>
        Decision.Deny("approval.running", $"request {request.Id} was approved and is running now; this call ran nothing. Call again with the same statement in a moment for its result");

    /// <summary>
    /// The live request for exactly this caller's statement and parameters on its connection, made on behalf of the same
    /// person (an approval given for a call made for alice is not run by the agent acting for bob, who may have approved it).
    /// </summary>
    private async ValueTask<StatementApproval?> FindRequestAsync(StatementRun run, RequestKey key, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        return await StateUnavailableException.GuardAsync(
            "look up this statement's approval request",
            () => statementApprovals.FindLiveAsync(
                run.Scope.Identity.Agent, run.Scope.Identity.DelegatedBy, run.Execution.Connection, key.StatementHash, key.ParametersHash,
                now - run.Scope.Policy.Approvals.PendingLifetime, now, cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>What binds a request to exact text: the statement's and the parameters' hashes, and the parameters as stored.</summary>
    private sealed record RequestKey(string? Parameters, string StatementHash, string ParametersHash)
    {
        public static RequestKey Of(ExecutionRequest execution, StatementText statement)
        {
            var parameters = execution.Parameters.Count == 0 ? null : JsonSerializer.Serialize(execution.Parameters);
            return new RequestKey(parameters, StatementApproval.Hash(statement.Normalized), StatementApproval.Hash(parameters ?? ""));
        }
    }

    // Two-phase write: run it in a transaction that is always rolled back, to tell approvers how many rows it touches and show
    // a few of them, masked, as the write leaves them (for a DELETE: the rows it removes). The sample comes from the same
    // statement with RETURNING * added; where that is refused (a column the profile may not read) or could show tagged
    // values the database does not mask (overlay mode, or a caller's profile that unmasks some), approvers get the count alone.
    private async ValueTask<(QueryResult Counted, string? Sample)> DryRunAsync(StatementRun run, StatementText statement, CancellationToken cancellationToken)
    {
        var execution = run.Execution with { DryRun = true };
        var connection = run.Scope.Policy.Connections[execution.Connection];
        var sampleable = statement.Kind is StatementKind.Insert or StatementKind.Update or StatementKind.Delete
            && !(connection.Masking == MaskingMode.Overlay && connection.Tags.Count > 0)
            && UnmaskOf(run.Scope).Count == 0
            && !SqlLexer.Tokenize(statement.Sql).Any(t => t.Kind == SqlTokenKind.Word && t.Text(statement.Sql).Equals("returning", StringComparison.OrdinalIgnoreCase));
        if (sampleable)
        {
            try
            {
                var sampled = await executor.ExecuteAsync(execution with { Sql = statement.Sql + "\nRETURNING *", MaxRows = 3 }, null, cancellationToken).ConfigureAwait(false);
                return (sampled, QueryResultCodec.Write(ResultMasker.Mask(sampled, new MaskingCounts())));
            }
            catch (DatabaseException e) when (e.Failure is DatabaseFailure.PermissionDenied or DatabaseFailure.Rejected)
            {
                // Counted below without a sample.
            }
        }

        var counted = await executor.ExecuteAsync(execution, null, cancellationToken).ConfigureAwait(false);
        return (counted, null);
    }

    // When the policy lets the agent's operator approve and the client can ask a human (elicitation), ask once per request.
    // Declining to answer leaves the request to the other approvers.
    // The form is withdrawn with formToken (or the call's own token); the answer, once given, is stored and recorded whatever
    // becomes of the call.
    private async ValueTask<StatementApproval> AskOperatorAsync(
        ApprovalSettings settings, StatementApproval request, CallContext call, CancellationToken formToken, CancellationToken cancellationToken)
    {
        if (call.AskOperator is not { } ask || !settings.OperatorMayApprove || request.Status != StatementApprovalStatus.Pending
            || request.Votes.Any(v => v.Approver == ApprovalSettings.Operator))
        {
            return request;
        }

        var message = $"Agent '{request.Agent}' wants to run on '{request.Connection}':\n{request.Sql}"
            + (request.Parameters is null ? "" : $"\nwith parameters {request.Parameters}")
            + (request.DryRunRows is { } rows ? $"\nA dry run touched {rows} row(s)." : "")
            + $"\n{request.Reason}. Approve request {request.Id}?";
        OperatorAnswer? answer;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(formToken))
        {
            timeout.CancelAfter(settings.Wait);
            try
            {
                answer = await ask(message, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!formToken.IsCancellationRequested)
            {
                answer = null;
            }
        }

        if (answer is null)
        {
            return request;
        }

        // Not cancellable once sent, as an approver's action in the console is not: a hang-up then could leave the vote stored
        // without its record.
        var vote = new ApprovalVote(ApprovalSettings.Operator, answer.Approve, time.GetUtcNow(), answer.Reason);
        var decided = await StateUnavailableException.GuardAsync(
            "record the operator's answer",
            () => statementApprovals.VoteAsync(request.Id, vote, settings.Required, settings.ApprovalLifetime, time.GetUtcNow(), CancellationToken.None)).ConfigureAwait(false);

        // A decision like one made in the CLI or the console, so it is on record as one: who, which way, why, through what.
        var verb = answer.Approve ? "approve" : "deny";
        var outcome = decided is null
            ? $"The operator's answer to {request.Id} changed nothing: it was no longer pending."
            : ApprovalDesk.Voted(decided, ApprovalSettings.Operator);
        var reason = $"{outcome} Answered in the MCP client of agent '{request.Agent}' (session {call.SessionId})."
            + (answer.Reason is { } why ? $" Reason given: {why}" : "");
        try
        {
            await audit.RecordAsync(time.GetUtcNow(), $"approvals {verb}", "mcp-elicitation", ApprovalSettings.Operator, request.Id, decided is not null, decided is null ? "approval.refused" : $"approval.{verb}", reason).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The vote is in the store, as the call's own record will say; the call goes on under it, and the gap is logged.
            Log.OperatorAnswerNotRecorded(logger, request.Id, verb, e.Message);
        }

        return decided ?? request;
    }

    // The operator is asked while the store is watched, within the one wait: an approver deciding elsewhere meanwhile ends
    // the wait at once (and withdraws the question), as an answer does; the form held neither the wake-up nor the progress
    // notifications, and its own wait came on top of the store's.
    private async ValueTask<StatementApproval> AwaitDecisionAsync(ApprovalSettings settings, StatementApproval request, CallContext call, CancellationToken cancellationToken)
    {
        using var asking = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var answered = AskOperatorAsync(settings, request, call, asking.Token, cancellationToken).AsTask();
        try
        {
            request = await WaitForDecisionAsync(settings, request, answered, call.Progress, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // Decided elsewhere, the wait over, or the call failing: the form is withdrawn either way.
            await asking.CancelAsync().ConfigureAwait(false);
        }

        try
        {
            var afterAnswer = await answered.ConfigureAwait(false);
            return request.Status == StatementApprovalStatus.Pending && afterAnswer.Status != StatementApprovalStatus.Pending ? afterAnswer : request;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The question was withdrawn: decided elsewhere, or the wait ran out.
            return request;
        }
        catch (Exception) when (request.Status != StatementApprovalStatus.Pending)
        {
            // The form failed (the client answered with an error), but the request was decided elsewhere: that decision stands.
            return request;
        }
    }

    private async ValueTask<StatementApproval> WaitForDecisionAsync(
        ApprovalSettings settings, StatementApproval request, Task<StatementApproval> answered, IProgress<WaitProgress>? progress, CancellationToken cancellationToken)
    {
        var wait = settings.Wait;
        var started = time.GetUtcNow();
        var reported = DateTimeOffset.MinValue;
        // A form that failed (its store write, or the client answering with an error) fails the call now, as it did before.
        while (request.Status == StatementApprovalStatus.Pending && time.GetUtcNow() - started < wait && !answered.IsFaulted)
        {
            var now = time.GetUtcNow();
            if (now - reported >= ProgressEvery)
            {
                progress?.Report(new WaitProgress(
                    (now - started).TotalSeconds,
                    wait.TotalSeconds,
                    $"Waiting for {Approvers(settings)} to approve request {request.Id} ({request.Approvals} of {request.Required} approvals); an approver runs: gatehouse approvals approve {request.Id}"));
                reported = now;
            }

            // An operator's answer wakes the wait at once, as it lands in the store.
            var poll = Task.Delay(ApprovalPoll, time, cancellationToken);
            await (answered.IsCompleted ? poll : Task.WhenAny(poll, answered)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                request = await statementApprovals.GetStatementAsync(request.Id, time.GetUtcNow(), cancellationToken).ConfigureAwait(false) ?? request;
            }
            catch (Exception e) when (StateUnavailableException.IsStoreFailure(e))
            {
                // A store that misses a poll does not end the wait: the decision is read at the next one that answers.
                Log.ApprovalPollFailed(logger, request.Id, e.Message);
            }
        }

        return request;
    }

    // Once claimed, the work must not be lost: it runs to the end even if the caller has gone, and a result the caller
    // can no longer receive is kept for its next call.
    private async ValueTask<StepResult> RunApprovedAsync(StatementRun run, StatementApproval request, string approvers, string rights, QuotaCaps? held, CancellationToken cancellationToken)
    {
        var allowed = Decision.Allow("approval.approved", $"approved by {approvers} (request {request.Id})");
        long? maxRows = request.DryRunRows is { } rows ? rows + run.Scope.Policy.Approvals.WriteTolerance : null;
        string? kept = null;
        try
        {
            // An approved read still meets every refusal by the rows it returned, but not again the approval it has.
            var approvedRun = run.ReadBound is { } bound ? run with { ReadBound = returned => bound(returned) is { NeedsApproval: false } refused ? refused : null } : run;
            var step = await ExecuteAsync(approvedRun, allowed, maxRows, held, CancellationToken.None).ConfigureAwait(false);
            kept = cancellationToken.IsCancellationRequested && step.Payload is QueryResult result ? QueryResultCodec.Write(result, rights) : null;
            return step;
        }
        finally
        {
            // Running → used whatever happened: a failed run is over too, and the approval is spent. When the store cannot
            // say so, the request stays running (no call can claim it again) until it lapses; the run's own outcome stands.
            try
            {
                var now = time.GetUtcNow();
                await statementApprovals.FinishRunAsync(request.Id, kept, now + run.Scope.Policy.Approvals.ResultLifetime, now, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (StateUnavailableException.IsStoreFailure(e))
            {
                Log.ApprovalRunNotFinished(logger, request.Id, request.ExpiresAt, kept is not null, e.Message);
            }
        }
    }

    private static StepResult Delivered(QueryResult result, Decision decision, string classification) =>
        new(decision, result, result.AffectedRows ?? result.Rows.Count, classification);

    private static string Approvers(ApprovalSettings settings) => settings.Approvers.Count == 0 ? "an approver" : string.Join(" or ", settings.Approvers);
}

/// <summary>A write whose rows must not commit (past its approval, its limit, or a rule's count): it is rolled back.</summary>
internal sealed class WriteRolledBackException(Decision decision) : Exception(decision.Reason)
{
    public Decision Decision { get; } = decision;
}
