using System.Diagnostics;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Authorization;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Enforcement.Quotas;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Enforcement.Pipeline;

/// <summary>
/// The one path from a tool call to the database: Identify → Record → Authorize → Classify → Execute, and a final record
/// before anything is returned. No tool reaches a connector any other way.
/// </summary>
public sealed partial class GatewayPipeline(
    LivePolicy livePolicy,
    Identifier identifier,
    IAuditStore audit,
    IApprovalStore approvals,
    IStatementApprovalStore statementApprovals,
    IStatementAnalyzer analyzer,
    ICatalogVersionSource catalogVersions,
    IFunctionCatalogSource functions,
    IQueryExecutor executor,
    ISchemaCatalog catalog,
    TimeProvider time,
    ILogger<GatewayPipeline> logger,
    GatewayLifetime lifetime)
{
    private readonly ClassificationCache _classifications = new();
    private readonly TagDrift _tagDrift = new(catalog, catalogVersions);
    private readonly Lock _rulesGate = new();
    private PolicyRules? _rules;

    // The rules of the policy in force, built once per policy version. Quota counts carry over a reload that leaves the
    // quotas as they were; a reload that changes them starts the counts afresh.
    private PolicyRules Rules()
    {
        var current = livePolicy.Current;
        if (Volatile.Read(ref _rules) is { } rules && ReferenceEquals(rules.Policy, current))
        {
            return rules;
        }

        lock (_rulesGate)
        {
            if (_rules is { } built && ReferenceEquals(built.Policy, current))
            {
                return built;
            }

            var quotas = _rules is { } old && System.Text.Json.JsonSerializer.Serialize(old.Policy.Quotas) == System.Text.Json.JsonSerializer.Serialize(current.Quotas)
                ? old.Quotas
                : new QuotaTracker(current.Quotas);
            var next = new PolicyRules(current, new GrantResolver(current, approvals), quotas);
            Volatile.Write(ref _rules, next);
            return next;
        }
    }

    /// <summary>What a call's body produced: the decision, a payload when allowed, and facts for the record.</summary>
    private sealed record StepResult(Decision Decision, object? Payload = null, long? RowCount = null, string? Classification = null, long Bytes = 0);

    /// <summary>
    /// Verifies and records a session opening: a stdio server starting with its token, or an HTTP request refused before any tool ran.
    /// </summary>
    public ValueTask<CallOutcome> OpenSessionAsync(CallContext call, CancellationToken cancellationToken) =>
        RunAsync(
            call,
            (r, _) => r,
            (scope, _) => ValueTask.FromResult(new StepResult(Decision.Allow("session.opened", $"agent '{scope.Identity.Agent}' connected over {call.Transport}"))),
            cancellationToken);

    /// <summary>
    /// Verifies and records a tool call that cannot be carried out as sent (an argument missing or of the wrong type, a tool
    /// that does not exist), refused with <paramref name="refusal"/>: it is on record as its caller's like any other call.
    /// </summary>
    public ValueTask<CallOutcome> RefuseCallAsync(CallContext call, Decision refusal, CancellationToken cancellationToken) =>
        RunAsync(call, (r, _) => r, (_, _) => ValueTask.FromResult(new StepResult(refusal)), cancellationToken);

    private async ValueTask<CallOutcome> RunAsync(
        CallContext call,
        Func<AuditRecord, GatewayPolicy, AuditRecord> describe,
        Func<CallScope, CancellationToken, ValueTask<StepResult>> body,
        CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        using var span = GatewayTelemetry.StartCall(call.Tool);
        var rules = Rules();
        var record = new AuditRecord
        {
            Id = AuditRecord.NewId(),
            Time = time.GetUtcNow(),
            Tool = call.Tool,
            Transport = call.Transport,
            SessionId = call.SessionId,
        };
        var scope = new CallScope(audit, describe(record, rules.Policy), rules);

        // Held until the call is recorded, so a graceful shutdown waits for the record too.
        using var lease = lifetime.TryEnter();
        using var cutOff = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.CutOff);
        StepResult result;
        try
        {
            IdentityResult identity;
            using (GatewayTelemetry.Stage("identify"))
            {
                identity = await identifier.IdentifyAsync(call.Token, cutOff.Token).ConfigureAwait(false);
            }

            if (identity.Identity is null)
            {
                if (identity.RefusedIdentity is { } refused)
                {
                    scope.Attribute(refused);
                }

                result = new StepResult(Decision.Deny(identity.Rule, identity.Reason));
            }
            else if (lease is null)
            {
                scope.Identify(identity.Identity);
                result = new StepResult(Decision.Deny("gateway.shutting_down", "this gateway instance is shutting down and takes no new calls; call again (another instance, or this one once restarted, will answer)"));
            }
            else
            {
                scope.Identify(identity.Identity);
                result = await AuthorizedAsync(scope, call, body, cutOff.Token).ConfigureAwait(false);
            }
        }
        catch (AuditUnavailableException e)
        {
            Log.AuditUnavailable(logger, e.InnerException ?? e, scope.Record.Id);
            return new CallOutcome(null, Decision.Fail("audit.unavailable", "the gateway could not record this call, so nothing was run; try again, and tell an admin if it persists"));
        }
        catch (DatabaseException e)
        {
            result = new StepResult(DatabaseDecision(scope.Policy, scope.Record.Connection, e));
        }
        catch (StateUnavailableException e)
        {
            // Fail closed: an agent that may have been disabled, or whose grant or approval may have been revoked, must not run.
            Log.StateUnavailable(logger, scope.Record.Id, e.What, e.InnerException!.Message);
            result = new StepResult(Decision.Fail("state.unavailable", $"the gateway's state store did not answer, so the gateway could not {e.What}; nothing was run. Try again, and tell an admin if it persists"));
        }
        catch (MaskingFailedException e)
        {
            Log.CallCrashed(logger, e.InnerException!, scope.Record.Id);
            result = new StepResult(Decision.Fail("masking.failed", "the result could not be checked for sensitive values, so it is withheld"));
        }
        catch (OperationCanceledException) when (lifetime.CutOff.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            result = new StepResult(Decision.Fail("gateway.shutdown", "the gateway shut down while this call was running (its shutdown deadline passed), so the call was cut off; call again"));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await FinishAsync(scope, new StepResult(Decision.Fail("call.cancelled", "the client cancelled the call")), started, span).ConfigureAwait(false);
            throw;
        }
        catch (Exception e)
        {
            Log.CallCrashed(logger, e, scope.Record.Id);
            result = new StepResult(Decision.Fail("gateway.error", $"the gateway hit an internal error; an admin can look up audit record {scope.Record.Id}"));
        }

        return await FinishAsync(scope, result, started, span).ConfigureAwait(false);
    }

    // Scopes and quotas, once the caller is known. A statement holds the rows and bytes it may still receive while it runs
    // (and its result stops there); what a call did receive counts against its quotas when it ends.
    private async ValueTask<StepResult> AuthorizedAsync(CallScope scope, CallContext call, Func<CallScope, CancellationToken, ValueTask<StepResult>> body, CancellationToken cancellationToken)
    {
        if (scope.Policy.Gateway.MissingScopes(call.Tool, scope.Identity.Scopes) is { Count: > 0 } missing)
        {
            return new StepResult(Decision.Deny("identity.insufficient_scope", $"the {call.Tool} tool needs the scope(s) {string.Join(", ", missing)}, which this token lacks; ask its issuer for a token with them"));
        }

        if (!call.IsToolCall)
        {
            return await body(scope, cancellationToken).ConfigureAwait(false);
        }

        var (lease, overQuota) = scope.Rules.Quotas.Enter(scope.Identity, time.GetUtcNow());
        if (overQuota is not null)
        {
            return new StepResult(Decision.Deny(overQuota.Rule, overQuota.Reason));
        }

        scope.Quota = lease;

        using (lease)
        {
            var result = await body(scope, cancellationToken).ConfigureAwait(false);
            lease!.Consume(result.RowCount ?? 0, result.Bytes, time.GetUtcNow());
            return result;
        }
    }

    private async ValueTask<CallOutcome> FinishAsync(CallScope scope, StepResult result, long started, Activity? span)
    {
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var record = scope.Record with
        {
            Decision = result.Decision.Verdict,
            Rule = result.Decision.Rule,
            Reason = result.Decision.Reason,
            RowCount = result.RowCount,
            DurationMs = elapsed,
            Classification = result.Classification ?? scope.Record.Classification,
            Error = result.Decision.Verdict == Verdict.Failed ? result.Decision.Reason : null,
        };

        try
        {
            // Recorded even when the caller has gone: what ran must be on record.
            using (GatewayTelemetry.Stage("record"))
            {
                await audit.CompleteAsync(record, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            Log.AuditUnavailable(logger, e, record.Id);
            // A write's outcome was stored before its commit, so only this last write failed: told just "failed", an agent
            // would run the write again.
            return new CallOutcome(null, Decision.Fail(
                "audit.unavailable",
                result.Decision.IsAllowed && result.Payload is QueryResult { AffectedRows: { } changed }
                    ? $"the write was committed ({changed} row(s) changed) and its outcome is on record, but the gateway could not finish this call's record, so the rest of its result is withheld; do not run it again; tell an admin"
                    : "the gateway could not record this call, so its result is withheld; tell an admin"));
        }

        GatewayTelemetry.Finish(span, record);
        var level = record.Decision == Verdict.Allowed ? LogLevel.Debug : LogLevel.Information;
        Log.CallFinished(logger, level, record.Tool, record.Agent ?? "(unidentified)", record.Decision.ToString(), record.Rule, elapsed, record.Id);
        // A refusal carries no payload, except the follow-up details of a statement waiting for approval.
        return new CallOutcome(record.Id, result.Decision, result.Decision.IsAllowed || result.Payload is PendingApproval ? result.Payload : null);
    }

    // The Mask stage. A failure here is a failed call, never an unmasked result.
    // databaseMasking explains what strict-mode profile views masked, so the audit record says what the agent received.
    private QueryResult MaskResult(QueryResult result, CallScope scope, Func<QueryResult, QueryResult>? databaseMasking = null)
    {
        QueryResult masked;
        var unmask = UnmaskOf(scope);
        using var stage = GatewayTelemetry.Stage("mask");
        try
        {
            masked = ResultMasker.Mask(result, new MaskingCounts(), unmask);
            masked = databaseMasking?.Invoke(masked) ?? masked;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new MaskingFailedException(e);
        }

        // The record holds what anyone may see: a caller allowed some values unmasked got them so (from the detectors, or from
        // its strict profile, which the gateway cannot mask again), so its result is not captured.
        var capture = scope.Record.Connection is { } name && scope.Policy.Connections.TryGetValue(name, out var config) && config.Capture == CaptureLevel.Full
            ? unmask.Count == 0
                ? ResultExcerpt.Write(masked, scope.Policy.Gateway.Audit.MaxCaptureBytes)
                : NotCaptured
            : null;
        scope.Describe(r => r with
        {
            Masking = masked.Masked.Count == 0 ? null : string.Join(", ", masked.Masked.Select(p => $"{p.Key}:{p.Value}")),
            Result = capture,
        });
        return masked;
    }

    // The classes the caller may see unmasked: as its call resolved them, or (no call got that far) as the policy gives them.
    private static IReadOnlySet<string> UnmaskOf(CallScope scope) => scope.Unmask ?? OverlayMasking.UnmaskRights(scope.Policy, scope.Identity);

    private const string NotCaptured = "(not captured: this caller may see some values unmasked, and records hold none)";

    private static Decision? CheckConnection(GatewayPolicy policy, string? connection) =>
        connection is not null && policy.Connections.ContainsKey(connection)
            ? null
            : Decision.Deny("request.unknown_connection", $"there is no connection named '{Clip(connection ?? "", 100)}'; this gateway has: {string.Join(", ", policy.Connections.Keys)}");

    // A connection the policy names is recorded as named; any other name an agent sent, clipped.
    private static string? RecordedConnection(string? name, GatewayPolicy policy) =>
        name is null || policy.Connections.ContainsKey(name) ? name : Clip(name, 100);

    private static string Clip(string text, int max) => text.Length <= max ? text : $"{text[..max]}… ({text.Length} characters)";

    private Decision DatabaseDecision(GatewayPolicy policy, string? connection, DatabaseException e)
    {
        // PostgreSQL echoes values in its messages (a failed cast shows the input): they pass the detectors too, sparing no
        // class even for a caller allowed some unmasked, since the message is its call's record as well.
        var message = ContentDetectors.Mask(e.Message, new MaskingCounts());
        switch (e.Failure)
        {
            case DatabaseFailure.Unavailable:
                Log.DatabaseUnavailable(logger, connection ?? "?", message);
                return Decision.Fail("database.unavailable", $"connection '{connection}' is not reachable right now ({message}); nothing was run, try again shortly");
            case DatabaseFailure.PermissionDenied:
                return Decision.Deny("database.permission_denied", $"PostgreSQL's own privileges refuse this ({message}); the gateway's credential may not do it either, whatever the policy says"
                    + (connection is not null && policy.Connections.TryGetValue(connection, out var config) && DatabaseProfiles.Apply(config)
                        ? ". This connection masks in the database: write table names without their schema (customers, not public.customers) so they resolve to your masked views"
                        : ""));
            case DatabaseFailure.ProfileMissing:
                return Decision.Deny("masking.profile_missing", $"{message}. Each agent and group of the policy, and each agent holding time-boxed grants, gets its own profile when an admin runs 'gatehouse setup' (after changing the policy or approving access); rights combined at call time from an agent's grants and its groups' have none. Nothing was run");
            case DatabaseFailure.CommitInDoubt:
                Log.DatabaseUnavailable(logger, connection ?? "?", message);
                return Decision.Fail("database.commit_unconfirmed", $"{message}, so PostgreSQL may or may not have applied it; check whether it took effect before running it again");
            case DatabaseFailure.Timeout:
                return Decision.Fail("database.timeout", $"the statement ran longer than {Durations.Format(policy.Gateway.Limits.StatementTimeout)} and was cancelled");
            default:
                return Decision.Fail("database.rejected", $"PostgreSQL rejected the statement: {message}" + (e.SqlState is null ? "" : $" (SQLSTATE {e.SqlState})"));
        }
    }
}
