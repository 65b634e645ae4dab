using System.Text.Json;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Authorization;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Guardrails;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Enforcement.Quotas;

namespace Gatehouse.Enforcement.Pipeline;

public sealed partial class GatewayPipeline
{
    /// <summary>At most this many positional parameters per statement.</summary>
    public const int MaxParameters = 100;

    public ValueTask<CallOutcome> QueryAsync(CallContext call, QueryRequest request, CancellationToken cancellationToken) =>
        RunAsync(
            call,
            (r, policy) => r with
            {
                Connection = RecordedConnection(request.Connection, policy),
                Sql = request.Sql is null ? null : Clip(request.Sql, policy.Gateway.Limits.MaxSqlLength),
                Parameters = RecordedParameters(request.Parameters, policy.Gateway.Limits.MaxSqlLength),
            },
            (scope, ct) => QueryBodyAsync(scope, request, call, ct),
            cancellationToken);

    // What a record keeps of the parameters: all of them when they are within the limit (the call may run with them); past
    // it (the call is refused), each clipped, so an agent cannot make every record megabytes long.
    private static string? RecordedParameters(IReadOnlyList<string?> parameters, int maxLength)
    {
        if (parameters.Count == 0)
        {
            return null;
        }

        var kept = parameters.Take(MaxParameters);
        return JsonSerializer.Serialize(parameters.Sum(p => p?.Length ?? 0) <= maxLength ? kept : kept.Select(p => p is null ? null : Clip(p, 200)));
    }

    private async ValueTask<StepResult> QueryBodyAsync(CallScope scope, QueryRequest request, CallContext call, CancellationToken cancellationToken)
    {
        var limits = scope.Policy.Gateway.Limits;
        if (CheckConnection(scope.Policy, request.Connection) is { } unknown)
        {
            return new StepResult(unknown);
        }

        if (CheckQueryInput(limits, request) is { } invalid)
        {
            return new StepResult(invalid);
        }

        IReadOnlyList<StatementText> statements;
        try
        {
            statements = StatementReader.Read(request.Sql!);
        }
        catch (SqlLexException e)
        {
            return new StepResult(Decision.Deny("sql.unreadable", $"the SQL could not be read: {e.Message}"));
        }

        if (statements.Count == 0)
        {
            return new StepResult(Decision.Deny("sql.empty", "the sql argument holds only comments; pass one SQL statement"));
        }

        if (statements.Count > 1)
        {
            var kinds = string.Join(", ", statements.Select(s => s.Keyword));
            return new StepResult(Decision.Deny("sql.multiple_statements", $"the sql argument holds {statements.Count} statements ({kinds}); Gatehouse runs exactly one statement per call, so send them one at a time"));
        }

        var statement = statements[0];
        var connection = request.Connection!;
        scope.Describe(r => r with { Classification = statement.Kind.Name() });
        scope.Note("identity", () => $"agent '{scope.Identity.Agent}'" + (scope.Identity.Groups.Count == 0 ? ", in no group" : $", in groups {string.Join(", ", scope.Identity.Groups)}"));
        scope.Note("statement", () => $"one {statement.Keyword} statement");

        // EXPLAIN is judged by the statement it explains.
        var analyzed = statement.Kind == StatementKind.Explain ? statement.Inner : statement;
        if (analyzed is null || !analyzed.Kind.IsExplainable() || (statement.Kind == StatementKind.Explain && analyzed.Kind != StatementKind.Select))
        {
            // Kinds the gateway cannot classify and run safely are refused outright, observe mode or not.
            var grantsForKind = await scope.Rules.Grants.ResolveAsync(scope.Identity, connection, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
            return new StepResult(StatementAuthorizer.AuthorizeKind(scope.Identity, connection, grantsForKind, statement) is { IsAllowed: false } refusal
                ? refusal
                : Decision.Deny("grant.kind_not_allowed", $"{statement.Keyword} cannot be run through Gatehouse"));
        }

        var connectionConfig = scope.Policy.Connections[connection];
        var verdicts = new PolicyVerdicts(connectionConfig.ObserveOnly);
        using var authorize = GatewayTelemetry.Stage("authorize");
        var (grants, unmask) = await scope.Rules.Grants.ResolveRightsAsync(scope.Identity, connection, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        scope.Unmask = unmask;
        var byKind = StatementAuthorizer.AuthorizeKind(scope.Identity, connection, grants, statement);
        authorize?.Dispose();
        scope.Note("grants", () => grants.Count == 0
            ? $"none on connection '{connection}'"
            : string.Join("; ", grants.Select(DescribeGrant)) + (unmask.Count == 0 ? "" : $"; may see unmasked: {string.Join(", ", unmask.Order(StringComparer.Ordinal))}"));
        scope.Note("kind", () => $"{byKind.Rule}: {byKind.Reason}");
        if (verdicts.Blocks(byKind))
        {
            return new StepResult(byKind);
        }

        var unbounded = BuiltInGuards.Check(statement);
        if (verdicts.Blocks(unbounded))
        {
            return new StepResult(unbounded!);
        }

        using (GatewayTelemetry.Stage("record"))
        {
            await scope.RecordBeforeDatabaseAsync(cancellationToken).ConfigureAwait(false);
        }

        using var classify = GatewayTelemetry.Stage("classify");
        if (await _tagDrift.CheckAsync(connectionConfig, cancellationToken).ConfigureAwait(false) is { } drift)
        {
            return new StepResult(drift);
        }

        // Strict masking: the statement is planned and run as the caller's profile role, so PostgreSQL itself masks.
        var profile = DatabaseProfiles.Apply(connectionConfig) ? DatabaseProfiles.ForCall(connectionConfig, grants, unmask) : null;
        var role = profile is not null ? SessionRole.Profile(profile.Name) : MappedRole(connectionConfig, scope.Identity);
        var (classified, resolvedRefusal, catalogVersion) = await ClassifyAsync(connectionConfig, role, profile is not null, analyzed, request.Parameters, cancellationToken).ConfigureAwait(false);
        if (resolvedRefusal is not null)
        {
            // Fails closed in observe mode, for the reason the plan's functions do (below).
            return new StepResult(resolvedRefusal);
        }

        var plan = classified!;
        if (profile is not null)
        {
            plan = DatabaseProfiles.WithoutViewInternals(plan);
        }

        var classification = Describe(statement, plan);
        classify?.Dispose();
        scope.Note("classification", () => $"PostgreSQL's plan: {classification}, about {plan.EstimatedRows:0} row(s)");
        using var authorizePlan = GatewayTelemetry.Stage("authorize.plan");
        var byPlan = StatementAuthorizer.AuthorizePlan(scope.Identity, connection, grants, plan);
        scope.Note("grant", () => string.Join("; ", plan.Relations.Select(r =>
            $"{r.Relation} ({r.Operation}): " + (grants.FirstOrDefault(g => g.Covers(r.Relation) && g.Allows(r.Access)) is { } g ? $"covered by {DescribeGrant(g)}" : "covered by no grant"))));
        if (verdicts.Blocks(byPlan))
        {
            return new StepResult(byPlan, Classification: classification);
        }

        var functionsRefused = await VetFunctionsAsync(connectionConfig, plan, profile is not null, cancellationToken).ConfigureAwait(false);
        if (functionsRefused is { IsAllowed: false } refused)
        {
            // Fail closed even in observe mode: EXPLAIN cannot see inside a function, so one the vetting refuses may do whatever
            // it is able to: set_config('role', ...) would switch the session to another masking profile's role and read its
            // views unmasked, query_to_xml runs a SQL string, dblink leaves a connection open past the call.
            return new StepResult(refused, Classification: classification);
        }

        var masked = connectionConfig.Masking == MaskingMode.Overlay
            ? OverlayMasking.Check(plan, connectionConfig, unmask)
            : null;
        scope.Note("masking", () => DescribeMasking(connectionConfig, profile, unmask, masked));
        if (masked is not null)
        {
            // Fail closed even in observe mode: a sensitive value must never leave to find out what would happen.
            return new StepResult(masked, Classification: classification);
        }

        authorizePlan?.Dispose();
        var unboundedByPlan = BuiltInGuards.Check(statement, plan);
        if (verdicts.Blocks(unboundedByPlan))
        {
            return new StepResult(unboundedByPlan!, Classification: classification);
        }

        using var guard = GatewayTelemetry.Stage("guard");
        var guarded = GuardrailEvaluator.Evaluate(analyzed, plan, scope.Identity, connection, scope.Policy.Guardrails, limits.MaxWriteRows);
        guard?.Dispose();
        scope.Note("guardrails", () => guarded is null ? "no guardrail matched" : $"{guarded.Rule}: {guarded.Reason}");
        var needsApproval = guarded is { NeedsApproval: true } && verdicts.Blocks(guarded);
        if (guarded is not { NeedsApproval: true } && verdicts.Blocks(guarded))
        {
            return new StepResult(guarded!, Classification: classification);
        }

        // The evaluation gives its first refusal only (the write limit's alone): observed, every rule it met goes on record.
        if (verdicts.ObserveOnly && guarded is not null)
        {
            verdicts.AlsoNote(scope.Policy.Guardrails.Select(r => GuardrailEvaluator.Evaluate(analyzed, plan, scope.Identity, connection, [r], double.PositiveInfinity)));
        }

        // A write is held to the row limit and the guardrails' row counts by the rows it really touched, before it commits: the
        // planner's estimate can be steered (two conditions it cannot estimate make a full-table DELETE look like one row).
        // PostgreSQL reports that count for the statement's own INSERT, UPDATE, DELETE or MERGE only, so a write inside a WITH
        // query, under a SELECT (or EXPLAIN ANALYZE), or added by a rewrite rule would go uncounted, and is refused.
        // An INSTEAD rule that turns a DELETE into an UPDATE is reported as DELETE 0, whatever it changed.
        var uncounted = plan.Writes && (plan.Writers > 1 || !statement.Kind.IsDml() || plan.WriteOperations.Any(op => op != statement.Kind.Name()))
            ? Decision.Deny("guard.uncounted_write", "this statement writes inside a WITH query, under a SELECT or EXPLAIN ANALYZE, or through a rewrite rule, where PostgreSQL reports no row count, so neither the write limit nor an approval could hold it to the rows it touches; send each write as a statement of its own")
            : null;
        if (verdicts.Blocks(uncounted))
        {
            return new StepResult(uncounted!, Classification: classification);
        }

        var maxRows = Math.Min(request.MaxRows ?? limits.MaxRows, limits.MaxRows);
        var execution = new ExecutionRequest(
            connection,
            statement.Sql,
            request.Parameters,
            ReadOnly: !plan.Writes && !statement.Kind.IsDml(),
            Cursor: statement.Kind == StatementKind.Select && !plan.Writes,
            maxRows,
            limits.MaxResultBytes,
            limits.StatementTimeout,
            scope.Identity,
            scope.Record.Id)
        {
            Role = role,
        };
        Func<QueryResult, QueryResult>? databaseMasking = profile is null ? null : r => StrictLineage.Annotate(r, plan, connectionConfig, profile.Masked);
        // On an observe_only connection both still judge the run, and what they would refuse is recorded, not enforced.
        Decision? Written(long rows, QueryResult written, double maxWriteRows, IReadOnlyList<GuardrailRule> rules) => GuardrailEvaluator.EvaluateWritten(
            analyzed, plan, scope.Identity, connection, rules, maxWriteRows, rows, written.AffectedRows, written.TablesWritten, enforced: !verdicts.ObserveOnly);
        Decision? Read(long rows, IReadOnlyList<GuardrailRule> rules) =>
            GuardrailEvaluator.EvaluateRead(analyzed, plan, scope.Identity, connection, rules, rows, enforced: !verdicts.ObserveOnly);
        Func<long, QueryResult, Decision?>? writeBound = execution.ReadOnly ? null : (rows, written) => Written(rows, written, limits.MaxWriteRows, scope.Policy.Guardrails);
        // A read is held to the guardrails' row counts by the rows it returned, before any leaves. Only rules with min_rows
        // can judge a read differently by its rows, so without one there is nothing to hold it to.
        Func<long, Decision?>? readBound = !execution.ReadOnly || !scope.Policy.Guardrails.Any(r => r.Match.MinRows is not null)
            ? null
            : rows => Read(rows, scope.Policy.Guardrails);
        var run = new StatementRun(scope, execution, classification, databaseMasking, writeBound, catalogVersion)
        {
            ReadBound = readBound,
            // Each rule on its own, past the write limit: the bounds give the first refusal only.
            ObservedRules = !verdicts.ObserveOnly ? null
                : execution.ReadOnly ? (rows, _) => [.. scope.Policy.Guardrails.Select(r => Read(rows, [r])).OfType<Decision>()]
                : (rows, written) => [.. scope.Policy.Guardrails.Select(r => Written(rows, written, double.PositiveInfinity, [r])).OfType<Decision>()],
            Verdicts = verdicts,
            MayMoveRows = statement.Kind is StatementKind.Update or StatementKind.Merge,
        };
        if (scope.Explaining)
        {
            return Explained(scope, execution, needsApproval ? guarded! : verdicts.Final(Decision.Allow("query.allowed", byPlan.IsAllowed ? byPlan.Reason : "allowed")));
        }

        if (needsApproval)
        {
            GatewayTelemetry.ApprovalRequested();
            using var approve = GatewayTelemetry.Stage("approve");
            return await WithApprovalAsync(run, guarded!, statement, call, RightsText(grants, unmask, connectionConfig), cancellationToken).ConfigureAwait(false);
        }

        // A statement that an earlier call of it sent for approval after it ran (by the rows it touched or returned, or a
        // write's cascades: a rule its plan did not match) goes back to that request rather than running again: run again, it
        // might no longer match (the row it cascaded from is gone) and commit beside the request. Only rules on rows, or for
        // a write on tables and operations, can do that, so only then is the state store asked.
        if (!verdicts.ObserveOnly && scope.Policy.Guardrails.Any(r => r.Outcome == GuardrailOutcome.RequireApproval
                && ((run.ReadBound is not null && r.Match.MinRows is not null)
                    || (run.WriteBound is not null && (r.Match.MinRows is not null || r.Match.Tables.Count > 0 || r.Match.Operations.Count > 0))))
            && await FindRequestAsync(run, RequestKey.Of(execution, statement), cancellationToken).ConfigureAwait(false) is { } earlier)
        {
            return await WithApprovalAsync(run, Decision.Deny(earlier.Rule, earlier.Reason) with { NeedsApproval = true }, statement, call, RightsText(grants, unmask, connectionConfig), cancellationToken).ConfigureAwait(false);
        }

        var step = await ExecuteAsync(run, verdicts.Final(Decision.Allow("query.allowed", byPlan.IsAllowed ? byPlan.Reason : "allowed")), maxAffectedRows: null, held: null, cancellationToken).ConfigureAwait(false);

        // It touched (or returned) enough rows to match a rule that sends it to a human, which its estimate did not: rolled back
        // (or its rows withheld), and asked for.
        return step.Decision.NeedsApproval
            ? await WithApprovalAsync(run, step.Decision, statement, call, RightsText(grants, unmask, connectionConfig), cancellationToken).ConfigureAwait(false)
            : step;
    }

    // A wait for approval can be long. Whatever a new call would be refused for by then (its token expired, the agent
    // disabled, a grant or unmask right revoked or lapsed) stops the approved run too; the approval stays unused.
    private async ValueTask<Decision?> StillEntitledAsync(CallScope scope, string connection, string rightsBefore, string? catalogBefore, CancellationToken cancellationToken)
    {
        // The statement was judged against the database's tables, views and functions as they were: changed since (a view
        // redefined, a function replaced), or not known to be unchanged, it is judged again first.
        if (catalogBefore is null || await CatalogVersionAsync(connection, cancellationToken).ConfigureAwait(false) != catalogBefore)
        {
            return Decision.Deny("approval.catalog_changed", "the database's tables, views or functions changed while this call waited for approval (or could not be confirmed unchanged), so nothing was run; call query again with the same statement and parameters: it is judged against the database as it is now and, if that still allows it, runs on this approval");
        }

        var now = time.GetUtcNow();
        if (scope.Identity.ExpiresAt <= now)
        {
            return Decision.Deny("identity.expired_token", "the token this call came with expired while it waited for approval, so nothing was run; call again with a fresh token to run it on this approval");
        }

        if (await identifier.CheckSwitchesAsync(scope.Identity, cancellationToken).ConfigureAwait(false) is { } disabled)
        {
            return Decision.Deny(disabled.Rule, $"{disabled.Reason}. It was disabled while this call waited for approval, so nothing was run");
        }

        var (grants, unmask) = await scope.Rules.Grants.ResolveRightsAsync(scope.Identity, connection, now, cancellationToken).ConfigureAwait(false);
        return RightsText(grants, unmask, scope.Policy.Connections[connection]) == rightsBefore
            ? null
            : Decision.Deny("approval.rights_changed", $"this agent's grants or unmask rights on connection '{connection}', or the connection's tags or masking strategies, changed while the call waited for approval, so nothing was run; call query again to have it judged under the rights it has now");
    }

    // The target's catalog version as last confirmed; one not known yet (its watch has just started, or the database was
    // away) is waited for a little, as a human's decision was anyway.
    private async ValueTask<string?> CatalogVersionAsync(string connection, CancellationToken cancellationToken)
    {
        var version = catalogVersions.Current(connection);
        for (var waited = 0; version is null && waited < 20; waited++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100), time, cancellationToken).ConfigureAwait(false);
            version = catalogVersions.Current(connection);
        }

        return version;
    }

    // What a result is masked under: the caller's grants and unmask rights, and the connection's tags and strategies. A kept
    // result is handed over only while they are all unchanged: a column tagged since its run would come back raw.
    private static string RightsText(IReadOnlyList<Grant> grants, IReadOnlySet<string> unmask, ConnectionConfig connection) =>
        string.Join("; ", grants.Select(DescribeGrant).Order(StringComparer.Ordinal)) + " | " + string.Join(",", unmask.Order(StringComparer.Ordinal))
        + $" | {connection.Masking}: " + string.Join(",", connection.Tags.Select(t => $"{t.Key}={t.Value}={MaskingStrategies.Name(connection.StrategyFor(t.Value))}").Order(StringComparer.Ordinal));

    /// <summary>
    /// An authorized statement ready to run, with what its record and masking need, for a write what the rows it touched
    /// would make of it (null: nothing stops it), and the target's catalog version it was judged under (null: not known then).
    /// </summary>
    private sealed record StatementRun(
        CallScope Scope,
        ExecutionRequest Execution,
        string Classification,
        Func<QueryResult, QueryResult>? DatabaseMasking,
        Func<long, QueryResult, Decision?>? WriteBound,
        string? CatalogVersion)
    {
        /// <summary>For a read, what the rows it returned would make of it (null: nothing stops it).</summary>
        public Func<long, Decision?>? ReadBound { get; init; }

        /// <summary>
        /// Observing, what each rule makes of the rows a statement touched or returned (and a write's tables), past the write
        /// limit: a bound gives its first refusal only (the limit's alone), and a rule met after it would go unrecorded.
        /// </summary>
        public Func<long, QueryResult, IReadOnlyList<Decision>>? ObservedRules { get; init; }

        /// <summary>The call's refusals so far; on an observe_only connection, what the bounds would refuse joins them, recorded only.</summary>
        public PolicyVerdicts Verdicts { get; init; } = new(observeOnly: false);

        /// <summary>An UPDATE or MERGE, which may move rows between partitions (counted as deleted and inserted).</summary>
        public bool MayMoveRows { get; init; }

        public bool Observing => Verdicts.ObserveOnly;
    }

    /// <summary>
    /// The Execute and Mask stages. A write commits only once its record is stored, and not at all past
    /// <paramref name="maxAffectedRows"/> (an approved one) or when the rows it touched meet a refusal of the run's bound.
    /// </summary>
    /// <param name="held">The caps an approved run's quotas already hold for it (taken before its approval was claimed).</param>
    private async ValueTask<StepResult> ExecuteAsync(StatementRun run, Decision allowed, long? maxAffectedRows, QuotaCaps? held, CancellationToken cancellationToken)
    {
        // The statement holds what its quotas have left, up to its caps, and its result (a write's RETURNING rows too) stops
        // there: statements at once cannot together pass a quota. The rows a write touches count once it has run, bounded by
        // max_write_rows, not by what is left.
        var execution = run.Execution;
        if ((held is null ? HoldQuota(run) : (held, null)) is var (caps, overQuota))
        {
            if (overQuota is not null)
            {
                return new StepResult(overQuota, Classification: run.Classification);
            }

            execution = execution with { MaxRows = (int)caps.Rows, RowCapReason = caps.RowReason, MaxBytes = (int)caps.Bytes, ByteCapReason = caps.ByteReason };
        }

        QueryResult? maskedWrite = null;
        Func<QueryResult, ValueTask>? recordBeforeCommit = run.Execution.ReadOnly ? null : async written =>
        {
            if (WrittenRefusal(run, written, maxAffectedRows) is { } refused)
            {
                allowed = run.Observing ? run.Verdicts.AlsoObserved(allowed, refused) : throw new WriteRolledBackException(refused);
                if (written.WriteRows is { } rows && run.ObservedRules?.Invoke(rows, written) is { } ruled)
                {
                    allowed = ruled.Aggregate(allowed, (noted, rule) => run.Verdicts.AlsoObserved(noted, Counted(run, written, rule)));
                }
            }

            maskedWrite = MaskResult(written, run.Scope, run.DatabaseMasking);
            // On record, a write's rows are all it touched (a one-row DELETE that cascaded to 10,000 is on record as 10,001);
            // its result's affected_rows is the statement's own count.
            await run.Scope.RecordOutcomeAsync(allowed, written.WriteRows ?? written.AffectedRows, run.Classification, cancellationToken).ConfigureAwait(false);
        };
        QueryResult raw;
        try
        {
            using var stage = GatewayTelemetry.Stage("execute");
            raw = await executor.ExecuteAsync(execution, recordBeforeCommit, cancellationToken).ConfigureAwait(false);
        }
        catch (WriteRolledBackException e)
        {
            // Nothing was delivered: what it held is free again while the call goes on (to an approval, say).
            run.Scope.Quota?.Release();
            return new StepResult(e.Decision, Classification: run.Classification);
        }

        var returned = raw.Rows.Count + (raw.Truncated ? 1 : 0);
        var withheld = run.ReadBound?.Invoke(returned);
        if (withheld is not null && run.Observing)
        {
            allowed = (run.ObservedRules?.Invoke(returned, raw) ?? []).Aggregate(run.Verdicts.AlsoObserved(allowed, withheld), run.Verdicts.AlsoObserved);
        }
        else if (withheld is not null)
        {
            // As a write is rolled back: nothing was delivered, so what it held is free again.
            run.Scope.Quota?.Release();
            return new StepResult(withheld, Classification: run.Classification);
        }

        var result = maskedWrite ?? MaskResult(raw, run.Scope, run.DatabaseMasking);
        return new StepResult(allowed, result, result.WriteRows ?? result.AffectedRows ?? result.Rows.Count, run.Classification, raw.Bytes);
    }

    // What the call's quotas hold for a run, up to its caps: the caps, or the refusal when one has nothing left; null when no
    // quota is judged (explaining).
    private (QuotaCaps Caps, Decision? Refusal)? HoldQuota(StatementRun run)
    {
        if (run.Scope.Quota is not { } quota)
        {
            return null;
        }

        var (caps, overQuota) = quota.Hold(run.Execution.MaxRows, run.Execution.MaxBytes, time.GetUtcNow());
        return (caps, overQuota is null ? null : Decision.Deny(overQuota.Rule, overQuota.Reason));
    }

    // Why a write that touched these rows must not commit. An approved one is held to its dry run's count (plus the
    // tolerance) and to every refusal; one that was not is also sent for approval when its rows match such a rule. On an
    // observe_only connection the refusal is only recorded: the write commits, as observe mode promises. The rows
    // are all those its transaction changed: a one-row DELETE whose foreign keys cascade to ten thousand touched 10,001.
    private static Decision? WrittenRefusal(StatementRun run, QueryResult written, long? approvedRows)
    {
        var refusal = written.WriteRows switch
        {
            _ when run.WriteBound is null && approvedRows is null => null,
            null => Decision.Deny("guard.uncounted_write", $"PostgreSQL reported no row count for this write, so {(run.Observing ? "" : "it was rolled back: ")}the write limit could not hold it"),
            var rows when rows > approvedRows => Decision.Deny(
                "approval.rows_exceeded",
                $"the approved write touched {rows} rows, more than the {approvedRows} approved (the dry run's count plus the tolerance), so it was rolled back; ask for a new approval"),
            var rows => run.WriteBound?.Invoke(rows.Value, written) is { } refused && !(refused.NeedsApproval && approvedRows is not null) ? refused : null,
        };
        return refusal is null ? null : Counted(run, written, refusal);
    }

    // A refusal of a write whose rows were not all its own, saying whose they were.
    private static Decision Counted(StatementRun run, QueryResult written, Decision refusal) => written.WriteRows > written.AffectedRows
        ? refusal with
        {
            Reason = $"{refusal.Reason}. Of those rows, the statement itself changed {written.AffectedRows}; its triggers and foreign-key cascades changed the rest"
                + (run.MayMoveRows && written.TablesWritten.Any(t => t.Lineage.Partition) ? ", or they are rows it moved between partitions, counted once deleted and once inserted" : ""),
        }
        : refusal;

    // Cached under the catalog version read before the statement was resolved: a change since only makes the entry stale
    // sooner. Each profile resolves names to its own views, so its plans are cached apart. On a miss PostgreSQL first resolves
    // the statement (parse and analysis, no planning) and the functions it calls are vetted before EXPLAIN, whose planning
    // would already run an IMMUTABLE one with constant arguments; those the policy has a say on join the plan's, so a cached
    // plan is vetted with them.
    private async ValueTask<(PlanFacts? Plan, Decision? Refused, string? Version)> ClassifyAsync(
        ConnectionConfig connection, SessionRole? role, bool strictProfile, StatementText statement, IReadOnlyList<string?> parameters, CancellationToken cancellationToken)
    {
        var version = catalogVersions.Current(connection.Name);
        var cacheScope = role is null ? connection.Name : $"{connection.Name}/{role.CacheScope}";
        var key = CacheKey(statement.Normalized, parameters);
        if (version is not null && _classifications.TryGet(cacheScope, key, version, out var cached))
        {
            return (cached, null, version);
        }

        var references = await analyzer.ResolveAsync(connection.Name, statement.Sql, role, cancellationToken).ConfigureAwait(false);
        var (calls, named, refused) = await VetReferencesAsync(connection, references, strictProfile, cancellationToken).ConfigureAwait(false);
        if (refused is not null)
        {
            return (null, refused, version);
        }

        var plan = await analyzer.ExplainAsync(connection.Name, statement.Sql, parameters, role, cancellationToken).ConfigureAwait(false);
        plan = plan with { Functions = [.. plan.Functions, .. calls], Called = named };
        if (version is not null)
        {
            _classifications.Set(cacheScope, key, version, plan);
        }

        return (plan, null, version);
    }

    // PostgreSQL plans a statement with its parameters' values bound, as constants: coalesce($1, ssn) with 'x' is folded to
    // 'x' and reads no ssn, and "where id = $1 or $2" with false is a one-row write. So a plan holds for the values it was
    // made with, and is cached under them (a digest; the values themselves are not kept).
    private static string CacheKey(string normalized, IReadOnlyList<string?> parameters) =>
        parameters.Count == 0 ? normalized : normalized + "\0" + StatementApproval.Hash(JsonSerializer.Serialize(parameters));

    // The calls the policy still has a say on (a vetted built-in passes under any policy), every call the statement names (for
    // guardrails), and the refusal when one is not allowed.
    private async ValueTask<(IReadOnlyList<FunctionCall> Calls, IReadOnlyList<FunctionCall> Named, Decision? Refused)> VetReferencesAsync(
        ConnectionConfig connection, StatementReferences references, bool strictProfile, CancellationToken cancellationToken)
    {
        var allowlist = FunctionAllowlist(connection, strictProfile);
        var (calls, named, refused) = await WithFunctionCatalogAsync(
            connection.Name,
            catalog => FunctionVetting.Calls(references, catalog) is { } named
                ? (FunctionVetting.ForPolicy(named, catalog, references.Writes), named, FunctionVetting.Vet(named, catalog, references.Writes, allowlist))
                : ((IReadOnlyList<FunctionCall>?)null, (IReadOnlyList<FunctionCall>)[], Decision.Deny(FunctionVetting.UnknownRule, "the statement calls a function that is not in the database's function catalog")),
            answer => answer.Item1 is null,
            cancellationToken).ConfigureAwait(false);
        return (calls ?? [], [.. named.Distinct()], refused);
    }

    // The cached function catalog's answer; when it lacks something (a function created since it was read), a fresh one's.
    private async ValueTask<T> WithFunctionCatalogAsync<T>(string connection, Func<FunctionCatalog, T> answer, Func<T, bool> lacking, CancellationToken cancellationToken)
    {
        var first = answer(await functions.GetAsync(connection, refresh: false, cancellationToken).ConfigureAwait(false));
        return lacking(first) ? answer(await functions.GetAsync(connection, refresh: true, cancellationToken).ConfigureAwait(false)) : first;
    }

    // The first of the connection's group_roles (in policy order) whose group the caller is in.
    private static SessionRole? MappedRole(ConnectionConfig connection, Identity.AgentIdentity caller) =>
        connection.GroupRoles.FirstOrDefault(m => caller.Groups.Contains(m.Group, StringComparer.Ordinal)) is { Role: { } mapped } ? SessionRole.Mapped(mapped) : null;

    // Token views call pgcrypto's hmac with a key agent roles cannot read; hmac itself is a pure function.
    private static IReadOnlyCollection<string> FunctionAllowlist(ConnectionConfig connection, bool strictProfile) =>
        strictProfile ? [.. connection.AllowedFunctions, DatabaseProfiles.TokenFunction] : connection.AllowedFunctions;

    private async ValueTask<Decision?> VetFunctionsAsync(ConnectionConfig connection, PlanFacts plan, bool strictProfile, CancellationToken cancellationToken)
    {
        if (plan.Functions.Count == 0)
        {
            return null;
        }

        var allowlist = FunctionAllowlist(connection, strictProfile);
        return await WithFunctionCatalogAsync(
            connection.Name,
            catalog => FunctionVetting.Vet(plan.Functions, catalog, plan.Writes, allowlist),
            decision => decision?.Rule == FunctionVetting.UnknownRule,
            cancellationToken).ConfigureAwait(false);
    }

    private static string Describe(StatementText statement, PlanFacts plan) =>
        plan.Relations.Count == 0
            ? statement.Kind.Name()
            : $"{statement.Kind.Name()}: {string.Join(", ", plan.Relations.Select(r => $"{r.Relation}({r.Operation})"))}";
}
