using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Pipeline;

public sealed partial class GatewayPipeline
{
    /// <summary>At most this many tables in one access request.</summary>
    public const int MaxRequestedTables = 50;

    /// <summary>
    /// At most this many of an agent's access requests, and as many of its statement requests, wait for a decision at once:
    /// approvers are people, and each request notifies them.
    /// </summary>
    public const int MaxPendingRequests = 20;

    // How many of its newest access requests, and of its statement requests, an agent is shown.
    private const int ListedRequests = 20;

    public ValueTask<CallOutcome> RequestAccessAsync(CallContext call, AccessRequestInput request, CancellationToken cancellationToken) =>
        RunAsync(
            call,
            (r, policy) => r with { Connection = RecordedConnection(request.Connection, policy), Classification = $"request {Clip(request.Access ?? "?", 60)} on {Clip(string.Join(", ", request.Tables.Concat(request.Schemas.Select(x => $"schema {x}"))), 500)}" },
            (scope, ct) => RequestAccessBodyAsync(scope, request, ct),
            cancellationToken);

    private async ValueTask<StepResult> RequestAccessBodyAsync(CallScope scope, AccessRequestInput input, CancellationToken cancellationToken)
    {
        if (input.StatusOnly)
        {
            var status = await StatusAsync(scope, null, cancellationToken).ConfigureAwait(false);
            return new StepResult(Decision.Allow("access.status", $"{status.Access.Count} access request(s) and {status.Statements.Count} statement request(s) of agent '{scope.Identity.Agent}'"), status);
        }

        if (CheckConnection(scope.Policy, input.Connection) is { } unknown)
        {
            return new StepResult(unknown);
        }

        if (ParseAccessRequest(input, scope.Policy.Approvals.MaxGrant, out var tables, out var access, out var unmask, out var duration) is { } invalid)
        {
            return new StepResult(invalid);
        }

        // Filed, it would only wait out its time and expire.
        if (scope.Policy.Approvals.NoAccessApprover)
        {
            return new StepResult(Decision.Deny(
                "request.no_approver",
                $"nobody may decide an access request here: approvals.approvers names only {ApprovalSettings.Operator}, who is asked about statements only; an admin must name approvers or approver groups"));
        }

        var agent = scope.Identity.Agent;
        var now = time.GetUtcNow();
        var request = new AccessRequest(
            AccessRequest.NewId(),
            agent,
            scope.Identity.Subject,
            scope.Identity.Issuer,
            input.Connection!,
            tables,
            access,
            input.Reason!.Trim(),
            duration,
            AccessRequestStatus.Pending,
            now)
        {
            Schemas = input.Schemas.Distinct(StringComparer.Ordinal).ToList(),
            Unmask = unmask,
            DelegatedBy = scope.Identity.DelegatedBy,
            Required = scope.Policy.Approvals.RequiredForAccess,
            PendingUntil = now + scope.Policy.Approvals.PendingLifetime,
        };
        // Counted and filed at once: calls filing at the same moment cannot together pass the cap.
        var pending = await StateUnavailableException.GuardAsync(
            "file this access request", () => approvals.CreateAsync(request, MaxPendingRequests, cancellationToken)).ConfigureAwait(false);
        if (pending >= MaxPendingRequests)
        {
            return new StepResult(Decision.Deny(
                "request.too_many_pending",
                $"agent '{agent}' already has {pending} access requests waiting for an approver, the most one agent may have; wait for decisions (request_access with status_only lists them) before filing more"));
        }

        return new StepResult(
            Decision.Allow("access.requested", $"request {request.Id} is pending; an approver can run: gatehouse approvals approve {request.Id}"),
            await FiledStatusAsync(scope, request, cancellationToken).ConfigureAwait(false));
    }

    // The request is filed, so the caller hears of it even when its other requests cannot be listed after: refused then, a
    // caller would retry and file the same request twice. A call cancelled meanwhile (by its client, or cut off by a shutdown)
    // is recorded as having filed it, which it did, rather than as cancelled.
    private async ValueTask<RequestStatus> FiledStatusAsync(CallScope scope, AccessRequest filed, CancellationToken cancellationToken)
    {
        try
        {
            return await StatusAsync(scope, filed, cancellationToken).ConfigureAwait(false);
        }
        catch (StateUnavailableException e)
        {
            Log.RequestsNotListed(logger, filed.Id, e.InnerException?.Message ?? e.Message);
            return Unlisted($"the state store did not answer, so the gateway could not {e.What}");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Unlisted($"the call was cancelled before the gateway could {ListingWhat}");
        }

        RequestStatus Unlisted(string why) => new(filed, [], []) { NotListed = $"{why}; request {filed.Id} itself is filed" };
    }

    private const string ListingWhat = "read this agent's requests";

    // The caller's own recent requests only, newest first.
    private async ValueTask<RequestStatus> StatusAsync(CallScope scope, AccessRequest? created, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var agent = scope.Identity.Agent;
        // Picked out by the store: from the newest thousand of every agent's, a busy agent's requests hid a quiet one's.
        var access = await StateUnavailableException.GuardAsync(ListingWhat, () => approvals.ListOfAgentAsync(agent, ListedRequests, now, cancellationToken)).ConfigureAwait(false);
        var statements = await StateUnavailableException.GuardAsync(ListingWhat, () => statementApprovals.ListStatementsOfAgentAsync(agent, ListedRequests, now, cancellationToken)).ConfigureAwait(false);
        return new RequestStatus(created, access, statements);
    }

    private static Decision? ParseAccessRequest(AccessRequestInput input, TimeSpan maxGrant, out List<RelationName> tables, out AccessLevel access, out string? unmask, out TimeSpan duration)
    {
        tables = [];
        duration = default;
        unmask = null;
        const string UnmaskPrefix = "unmask:";
        if (input.Access?.StartsWith(UnmaskPrefix, StringComparison.Ordinal) == true)
        {
            unmask = input.Access[UnmaskPrefix.Length..];
            access = AccessLevel.Read;
            if (unmask.Length is 0 or > 40 || unmask == "all" || !unmask.All(c => char.IsAsciiLetterLower(c) || c == '_'))
            {
                return Decision.Deny("request.bad_access", $"'{Clip(input.Access, 60)}' names no class; write unmask:CLASS, e.g. unmask:email (one class per request, not all)");
            }
        }
        else if (!AccessLevels.TryParse(input.Access, out access))
        {
            return Decision.Deny("request.bad_access", $"access must be 'read', 'write' or 'unmask:CLASS', not '{Clip(input.Access ?? "", 40)}'");
        }

        if (unmask is not null && input.Tables.Count + input.Schemas.Count > 0)
        {
            // Approved, the tables would have been a read grant besides: the approver is asked one thing at a time.
            return Decision.Deny("request.bad_tables", $"{Clip(input.Access!, 60)} applies on the whole connection, to whatever this agent may already read, so it names no tables or schemas; ask for read access to tables in a request of its own");
        }

        // JSON's null in a list binds as a null string, whatever the list's type says.
        if (input.Tables.Contains(null!) || input.Schemas.Contains(null!))
        {
            return Decision.Deny("request.bad_tables", "tables and schemas are lists of names; null is not one");
        }

        if ((unmask is null && input.Tables.Count + input.Schemas.Count is 0) || input.Tables.Count > MaxRequestedTables || input.Schemas.Count > MaxRequestedTables)
        {
            return Decision.Deny("request.bad_tables", $"name up to {MaxRequestedTables} tables as schema.table and/or up to {MaxRequestedTables} schemas, at least one of either");
        }

        if (input.Schemas.FirstOrDefault(s => s.Length is 0 or > 63 || s.Contains('.', StringComparison.Ordinal) || s.Contains('"', StringComparison.Ordinal) || s.Any(char.IsWhiteSpace)) is { } badSchema)
        {
            return Decision.Deny("request.bad_tables", $"'{Clip(badSchema, 100)}' is not a schema name ({RelationName.Spelling})");
        }

        if (input.Schemas.Concat(input.Tables.Select(t => t.Split('.')[0])).FirstOrDefault(Masking.DatabaseProfiles.IsGatewaySchema) is { } reserved)
        {
            return Decision.Deny("request.reserved_schema", $"schema '{Clip(reserved, 100)}' belongs to the gateway's strict masking; nobody can be granted it");
        }

        foreach (var text in input.Tables)
        {
            if (!RelationName.TryParse(text, out var relation) || text.Length > 200)
            {
                return Decision.Deny("request.bad_tables", $"'{Clip(text, 100)}' is not a table name; write schema.table ({RelationName.Spelling})");
            }

            tables.Add(relation);
        }

        if (string.IsNullOrWhiteSpace(input.Reason) || input.Reason.Length > 2000)
        {
            return Decision.Deny("request.bad_reason", "give a reason (up to 2000 characters) an approver can judge the request by");
        }

        if (!Durations.TryParse(input.Duration, out duration) || duration < TimeSpan.FromMinutes(1) || duration > maxGrant)
        {
            return Decision.Deny("request.bad_duration", $"duration must be between 1m and {Durations.Format(maxGrant)}, written like 30m or 2h");
        }

        return null;
    }
}
