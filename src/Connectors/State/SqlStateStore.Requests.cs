using System.Data.Common;
using System.Text.Json;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Connectors.State;

public abstract partial class SqlStateStore : IApprovalStore
{
    private protected const string RequestColumns =
        "id, agent, subject, issuer, connection, tables_json, access, reason, duration_ms, status, created_ms, decided_ms, decided_by, decision_note, grant_expires_ms, schemas_json, unmask, delegated_by, votes_json, required, expires_ms";

    // Until a request expires undecided: a request stored before expires_ms was kept, an hour after it was filed.
    private static readonly string PendingUntil = $"coalesce(expires_ms, created_ms + {(long)AccessRequest.FormerPendingLifetime.TotalMilliseconds})";

    /// <summary>What the store's trigger says of an access request approved with fewer approvals than it requires.</summary>
    private protected const string AccessApprovalsShort =
        "an access request was approved with fewer approvals than it requires, or after it expired: a gateway older than the store schema decided it; upgrade every gateway sharing the store";

    private static readonly string CountPendingRequests = $"SELECT count(*) FROM access_requests WHERE agent = $1 AND status = 'Pending' AND {PendingUntil} > $2";

    public async ValueTask<int> CreateAsync(AccessRequest request, int maxPending, CancellationToken cancellationToken) =>
        (await FileUnlessAtCapAsync<AccessRequest>(
            request.Agent,
            maxPending,
            null,
            (CountPendingRequests, [request.Agent, ToMs(request.CreatedAt)]),
            (
                $"INSERT INTO access_requests ({RequestColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'Pending', $10, NULL, NULL, NULL, NULL, $11, $12, $13, '[]', $14, $15)",
                [
                    request.Id, request.Agent, request.Subject, request.Issuer, request.Connection,
                    JsonSerializer.Serialize(request.Tables.Select(t => t.ToString())), request.Access.ToPolicyString(), request.Reason,
                    (long)request.Duration.TotalMilliseconds, ToMs(request.CreatedAt), JsonSerializer.Serialize(request.Schemas), request.Unmask, request.DelegatedBy,
                    (long)request.Required, ToMs(request.UndecidedExpiry),
                ]),
            cancellationToken).ConfigureAwait(false)).Pending;

    public async ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await AuditQueryAsync($"SELECT {RequestColumns} FROM access_requests WHERE id = $1", [id], r => ReadRequest(r, now), cancellationToken).ConfigureAwait(false))
        .FirstOrDefault();

    public async ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // The live ones are picked out by the store, not from the latest thousand of every status: past a thousand requests
        // (made by one agent in a minute, or over months) an active grant or a pending request would drop out of sight.
        (string Where, object?[] Values) live = status switch
        {
            AccessRequestStatus.Pending => ($" WHERE status = 'Pending' AND {PendingUntil} > $1", [ToMs(now)]),
            AccessRequestStatus.Approved => (" WHERE status = 'Approved' AND grant_expires_ms > $1", [ToMs(now)]),
            _ => ("", []),
        };
        var rows = await AuditQueryAsync(
            $"SELECT {RequestColumns} FROM access_requests{live.Where} ORDER BY created_ms DESC LIMIT 1000", live.Values, r => ReadRequest(r, now), cancellationToken).ConfigureAwait(false);
        return status is null ? rows : rows.Where(r => r.Status == status).ToList();
    }

    public async ValueTask<IReadOnlyList<AccessRequest>> ListOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) =>
        await AuditQueryAsync(
            $"SELECT {RequestColumns} FROM access_requests WHERE agent = $1 ORDER BY created_ms DESC LIMIT $2", [agent, (long)limit], r => ReadRequest(r, now), cancellationToken).ConfigureAwait(false);

    public async ValueTask<int> CountPendingAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        (int)(await AuditQueryAsync(
            CountPendingRequests,
            [agent, ToMs(now)],
            r => r.GetInt64(0),
            cancellationToken).ConfigureAwait(false))[0];

    public async ValueTask<bool> DecideAsync(string id, ApprovalVote vote, int required, TimeSpan maxGrant, DateTimeOffset now, CancellationToken cancellationToken) =>
        // One write transaction, the row locked: two approvers deciding at once are counted one after the other, and one
        // person's two decisions arriving at once count once.
        await InTransactionAsync(
            async (connection, transaction) =>
            {
                var request = (await RowsAsync(
                    connection, transaction, $"SELECT {RequestColumns} FROM access_requests WHERE id = $1{LockRow}", [id], r => ReadRequest(r, now), cancellationToken)
                    .ConfigureAwait(false)).FirstOrDefault();
                if (request is not { Status: AccessRequestStatus.Pending } || request.RefuseApprover(vote.Approver, denying: !vote.Approve) is not null)
                {
                    return false;
                }

                var (votes, needed, approved) = ApprovalVote.Tally(request.Votes, vote, request.Required, required);
                var status = approved switch
                {
                    true => AccessRequestStatus.Approved,
                    false => AccessRequestStatus.Denied,
                    null => AccessRequestStatus.Pending,
                };
                var decided = approved is not null;
                var grantEnds = status == AccessRequestStatus.Approved ? ToMs(now + (request.Duration < maxGrant ? request.Duration : maxGrant)) : (long?)null;
                await NonQueryAsync(
                    connection,
                    transaction,
                    "UPDATE access_requests SET status = $1, votes_json = $2, required = $3, decided_ms = $4, decided_by = $5, decision_note = $6, grant_expires_ms = $7 WHERE id = $8",
                    [
                        status.ToString(), JsonSerializer.Serialize(votes), (long)needed, decided ? ToMs(now) : null, decided ? vote.Approver : null,
                        decided ? vote.Note : null, grantEnds, id,
                    ],
                    cancellationToken).ConfigureAwait(false);
                return true;
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) =>
        await ExecuteStateAsync(
            "UPDATE access_requests SET status = 'Revoked', grant_expires_ms = $1,"
            + " decision_note = coalesce(decision_note || '; ', '') || 'revoked by ' || CAST($2 AS TEXT)"
            + " WHERE id = $3 AND status = 'Approved' AND grant_expires_ms > $1",
            [ToMs(now), revokedBy, id],
            cancellationToken).ConfigureAwait(false) == 1;

    public virtual async ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        await AuditQueryAsync(
            $"SELECT {RequestColumns} FROM access_requests WHERE agent = $1 AND status = 'Approved' AND grant_expires_ms > $2",
            [agent, ToMs(now)],
            r => ReadRequest(r, now).ToGrant(),
            cancellationToken).ConfigureAwait(false);

    // A decision's own note, without the revocation RevokeAsync appends to a revoked grant's.
    private static string? DecisionNoteOf(string? stored, bool revoked) =>
        revoked && stored?.LastIndexOf("revoked by ", StringComparison.Ordinal) is { } at and >= 0 ? (at >= 2 ? stored[..(at - 2)] : null) : stored;

    // The stored votes. A decision with no vote of its decider's (stored before approvals were counted per request, or made
    // by a gateway of that version since) joins them as one: a grant's end says it was an approval.
    private static List<ApprovalVote> ReadVotes(DbDataReader r, AccessRequestStatus status)
    {
        var votes = Text(r, 18) is { } stored ? JsonSerializer.Deserialize<List<ApprovalVote>>(stored) ?? [] : [];
        if (Text(r, 12) is { } by && Long(r, 11) is { } at && !votes.Any(v => v.Approver == by))
        {
            votes.Add(new ApprovalVote(by, !r.IsDBNull(14), FromMs(at), DecisionNoteOf(Text(r, 13), status == AccessRequestStatus.Revoked)));
        }

        return votes;
    }

    private protected static AccessRequest ReadRequest(DbDataReader r, DateTimeOffset now)
    {
        var tables = JsonSerializer.Deserialize<string[]>(r.GetString(5))!
            .Select(RelationName.FromStored)
            .ToList();
        AccessLevels.TryParse(r.GetString(6), out var access);
        var created = FromMs(r.GetInt64(10));
        var grantExpires = Long(r, 14) is { } ms ? FromMs(ms) : (DateTimeOffset?)null;
        var status = Enum.Parse<AccessRequestStatus>(r.GetString(9));
        // Expiry is derived on read, so no background job is needed to keep statuses honest.
        var pendingUntil = Long(r, 20) is { } until ? FromMs(until) : (DateTimeOffset?)null;
        if ((status == AccessRequestStatus.Pending && AccessRequest.UndecidedExpiryOf(created, pendingUntil) <= now)
            || (status == AccessRequestStatus.Approved && grantExpires <= now))
        {
            status = AccessRequestStatus.Expired;
        }

        return new AccessRequest(
            r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), tables, access, r.GetString(7),
            TimeSpan.FromMilliseconds(r.GetInt64(8)), status, created,
            Long(r, 11) is { } decided ? FromMs(decided) : null, Text(r, 12), Text(r, 13), grantExpires)
        {
            Schemas = Text(r, 15) is { } schemas ? JsonSerializer.Deserialize<string[]>(schemas) ?? [] : [],
            Unmask = Text(r, 16),
            DelegatedBy = Text(r, 17),
            Votes = ReadVotes(r, status),
            Required = Long(r, 19) is { } required ? (int)required : 1,
            PendingUntil = pendingUntil,
        };
    }
}
