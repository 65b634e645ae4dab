using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Pipeline;

/// <summary>One step of an explained decision: what was judged, and what came of it.</summary>
public sealed record ExplainStep(string Step, string Detail);

/// <summary>What the <c>query</c> tool would decide for a statement, and the steps that led there.</summary>
public sealed record QueryExplanation(Decision Decision, IReadOnlyList<ExplainStep> Steps)
{
    /// <summary>The statement would wait for a human: <see cref="Decision"/> is the guardrail that asks.</summary>
    public bool NeedsApproval => Decision.NeedsApproval;
}

public sealed partial class GatewayPipeline
{
    /// <summary>
    /// Decides a statement for <paramref name="identity"/> exactly as <see cref="QueryAsync"/> would, through the same
    /// stages, but stops where it would run it: PostgreSQL only plans it (EXPLAIN), nothing is executed and nothing is
    /// recorded. The identity is taken as given, not from a token; whether an admin disabled it is judged as for a call.
    /// Token scopes and quotas are not judged (they depend on the token and on traffic).
    /// </summary>
    public async ValueTask<QueryExplanation> ExplainAsync(AgentIdentity identity, QueryRequest request, CancellationToken cancellationToken)
    {
        var rules = Rules();
        var scope = new CallScope(null, new AuditRecord { Id = "explain", Time = time.GetUtcNow(), Tool = "query", Transport = "explain" }, rules);
        scope.Identify(identity);
        StepResult result;
        try
        {
            result = await identifier.CheckSwitchesAsync(identity, cancellationToken).ConfigureAwait(false) is { } disabled
                ? new StepResult(Decision.Deny(disabled.Rule, disabled.Reason))
                : await QueryBodyAsync(scope, request, new CallContext("query", null, "explain", null), cancellationToken).ConfigureAwait(false);
        }
        catch (DatabaseException e)
        {
            result = new StepResult(DatabaseDecision(rules.Policy, request.Connection, e));
        }

        // Only a guardrail that asks for a human reaches here carrying NeedsApproval.
        scope.Note("decision", () => result.Decision.NeedsApproval
            ? $"waits for approval ({result.Decision.Rule}): {result.Decision.Reason}"
            : $"{(result.Decision.IsAllowed ? "runs" : "refused")} ({result.Decision.Rule}): {result.Decision.Reason}");
        return new QueryExplanation(result.Decision, scope.Steps);
    }

    // Where an explained statement stops: before it would wait for approval or run.
    private static StepResult Explained(CallScope scope, ExecutionRequest execution, Decision decision)
    {
        scope.Note("execution", () => $"{(execution.ReadOnly ? "a read-only transaction" : "a read-write transaction")}"
            + $" as {(execution.Role is not { } role ? "the gateway's login role" : role.Schema is null ? $"the mapped role {role.Role}" : $"the masking profile role {role.Role}")}, at most {execution.MaxRows} rows and {execution.MaxBytes} bytes, timeout {Durations.Format(execution.StatementTimeout)}");
        return new StepResult(decision);
    }

    private static string DescribeGrant(Grant grant) =>
        $"{grant.Access.ToPolicyString()} on {string.Join(", ", grant.Schemas.Select(s => $"schema {s}").Concat(grant.Tables.Select(t => t.ToString())))}"
        + (grant.ExpiresAt is { } until ? $" ({grant.Source}, until {until:u})" : $" ({grant.Source})");

    private static string DescribeMasking(ConnectionConfig connection, DatabaseProfile? profile, IReadOnlySet<string> unmask, Decision? refused)
    {
        if (refused is not null)
        {
            return $"overlay: {refused.Reason}";
        }

        var classes = connection.Tags.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var hidden = unmask.Contains("all") ? [] : classes.Where(c => !unmask.Contains(c)).ToList();
        var detectors = "; every value returned also passes the content detectors";
        if (classes.Count == 0)
        {
            return "no tagged columns on this connection" + detectors;
        }

        return profile is not null
            ? $"strict: PostgreSQL masks through profile {profile.Name}" + (hidden.Count == 0 ? ", which masks nothing for this caller" : $", masking {string.Join(", ", hidden)}") + detectors
            : $"overlay: the statement reads no tagged column this caller may not see (hidden: {(hidden.Count == 0 ? "none" : string.Join(", ", hidden))})" + detectors;
    }
}
