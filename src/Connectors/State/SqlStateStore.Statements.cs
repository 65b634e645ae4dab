using System.Data.Common;
using System.Text.Json;
using Gatehouse.Enforcement.Approvals;

namespace Gatehouse.Connectors.State;

public abstract partial class SqlStateStore : IStatementApprovalStore
{
    private const string StatementColumns =
        "id, agent, subject, issuer, connection, statement_hash, parameters_hash, sql, parameters, classification, rule, reason, required,"
        + " status, created_ms, expires_ms, votes_json, dry_run_rows, kept_result, kept_until_ms, review, dry_run_sample, delegated_by";

    // The same statement: one agent's, on one person's behalf (or on no one's), on one connection, with the same parameters.
    private const string SameStatement =
        "agent = $1 AND connection = $2 AND statement_hash = $3 AND parameters_hash = $4"
        + " AND (delegated_by = $5 OR (delegated_by IS NULL AND CAST($5 AS TEXT) IS NULL))";

    // A request is made by an agent on a person's behalf (or on no one's): the same statement for another person is another request.
    public async ValueTask<StatementApproval?> FindLiveAsync(
        string agent, string? delegatedBy, string connection, string statementHash, string parametersHash, DateTimeOffset decidedSince, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await AuditQueryAsync(
            $"SELECT {StatementColumns} FROM statement_approvals WHERE {SameStatement}"
            + " AND ((status IN ('Pending', 'Approved', 'Running') AND expires_ms > $6)"
            + " OR (status = 'Used' AND kept_result IS NOT NULL AND kept_until_ms > $6)"
            + " OR (status IN ('Denied', 'Cancelled') AND created_ms > $7))"
            // A result waiting for its requester comes first: a newer request must not hide it.
            + " ORDER BY CASE WHEN kept_result IS NULL THEN 1 ELSE 0 END, created_ms DESC LIMIT 1",
            [agent, connection, statementHash, parametersHash, delegatedBy, ToMs(now), ToMs(decidedSince)],
            r => ReadStatement(r, now),
            cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    private const string CountPendingStatements = "SELECT count(*) FROM statement_approvals WHERE agent = $1 AND status = 'Pending' AND expires_ms > $2";

    public async ValueTask<StatementFiling> CreateStatementAsync(StatementApproval request, int maxPending, DateTimeOffset decidedSince, CancellationToken cancellationToken)
    {
        var now = request.CreatedAt;
        await ForgetLapsedResultsAsync(now, cancellationToken).ConfigureAwait(false);
        var (pending, same) = await FileUnlessAtCapAsync<StatementApproval>(
            request.Agent,
            maxPending,
            (
                $"SELECT {StatementColumns} FROM statement_approvals WHERE {SameStatement}"
                + " AND ((status IN ('Pending', 'Approved', 'Running') AND expires_ms > $6) OR (status IN ('Denied', 'Cancelled') AND created_ms > $7))"
                + " ORDER BY created_ms DESC LIMIT 1",
                [request.Agent, request.Connection, request.StatementHash, request.ParametersHash, request.DelegatedBy, ToMs(now), ToMs(decidedSince)],
                r => ReadStatement(r, now)),
            (CountPendingStatements, [request.Agent, ToMs(request.CreatedAt)]),
            (
                $"INSERT INTO statement_approvals ({StatementColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'Pending', $14, $15, '[]', $16, NULL, NULL, NULL, $17, $18)",
                [
                    request.Id, request.Agent, request.Subject, request.Issuer, request.Connection, request.StatementHash, request.ParametersHash,
                    request.Sql, request.Parameters, request.Classification, request.Rule, request.Reason, (long)request.Required,
                    ToMs(request.CreatedAt), ToMs(request.ExpiresAt), request.DryRunRows, request.DryRunSample, request.DelegatedBy,
                ]),
            cancellationToken).ConfigureAwait(false);
        return new StatementFiling(pending, same);
    }

    public async ValueTask<StatementApproval?> GetStatementAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await AuditQueryAsync($"SELECT {StatementColumns} FROM statement_approvals WHERE id = $1", [id], r => ReadStatement(r, now), cancellationToken).ConfigureAwait(false))
        .FirstOrDefault();

    public async ValueTask<IReadOnlyList<StatementApproval>> ListStatementsAsync(bool all, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Pending ones are picked out by the store, so a thousand newer requests of any status cannot hide one.
        var rows = await AuditQueryAsync(
            $"SELECT {StatementColumns} FROM statement_approvals{(all ? "" : " WHERE status = 'Pending' AND expires_ms > $1")} ORDER BY created_ms DESC LIMIT 1000",
            all ? [] : [ToMs(now)],
            r => ReadStatement(r, now),
            cancellationToken).ConfigureAwait(false);
        return all ? rows : rows.Where(r => r.Status == StatementApprovalStatus.Pending).ToList();
    }

    public async ValueTask<int> CountPendingStatementsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        (int)(await AuditQueryAsync(
            CountPendingStatements, [agent, ToMs(now)], r => r.GetInt64(0), cancellationToken).ConfigureAwait(false))[0];

    public async ValueTask<IReadOnlyList<StatementApproval>> ListStatementsOfAgentAsync(string agent, int limit, DateTimeOffset now, CancellationToken cancellationToken) =>
        await AuditQueryAsync(
            $"SELECT {StatementColumns} FROM statement_approvals WHERE agent = $1 ORDER BY created_ms DESC LIMIT $2", [agent, (long)limit], r => ReadStatement(r, now), cancellationToken).ConfigureAwait(false);

    public async ValueTask<StatementApproval?> VoteAsync(string id, ApprovalVote vote, int required, TimeSpan approvalLifetime, DateTimeOffset now, CancellationToken cancellationToken) =>
        // One write transaction, the row locked: two approvers deciding at once are counted one after the other.
        await InTransactionAsync<StatementApproval?>(
            async (connection, transaction) =>
            {
                var request = await LockedStatementAsync(connection, transaction, id, now, cancellationToken).ConfigureAwait(false);
                // Checked again inside the write transaction: two decisions by one person arriving at once count once.
                if (request is not { Status: StatementApprovalStatus.Pending } || request.RefuseApprover(vote.Approver) is not null)
                {
                    return null;
                }

                var (votes, needed, approved) = ApprovalVote.Tally(request.Votes, vote, request.Required, required);
                var status = approved switch
                {
                    true => StatementApprovalStatus.Approved,
                    false => StatementApprovalStatus.Denied,
                    null => StatementApprovalStatus.Pending,
                };
                var expires = status == StatementApprovalStatus.Approved ? now + approvalLifetime : request.ExpiresAt;
                await NonQueryAsync(
                    connection,
                    transaction,
                    "UPDATE statement_approvals SET status = $1, votes_json = $2, expires_ms = $3, required = $4 WHERE id = $5",
                    [status.ToString(), JsonSerializer.Serialize(votes), ToMs(expires), (long)needed, id],
                    cancellationToken).ConfigureAwait(false);
                return request with { Status = status, Votes = votes, ExpiresAt = expires, Required = needed };
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<(StatementApproval? Request, bool Reopened)> RequireAsync(string id, int required, DateTimeOffset reopenedUntil, DateTimeOffset now, CancellationToken cancellationToken) =>
        await InTransactionAsync<(StatementApproval?, bool)>(
            async (connection, transaction) =>
            {
                var request = await LockedStatementAsync(connection, transaction, id, now, cancellationToken).ConfigureAwait(false);
                if (request is not { Status: StatementApprovalStatus.Pending or StatementApprovalStatus.Approved } || request.Required >= required)
                {
                    return (request, false);
                }

                // Approved under fewer approvals than now needed: pending again, for the rest, with a pending request's time
                // for them (an approval's own is shorter).
                var reopened = request.Status == StatementApprovalStatus.Approved && request.Approvals < required;
                var status = reopened ? StatementApprovalStatus.Pending : request.Status;
                var expires = reopened && reopenedUntil > request.ExpiresAt ? reopenedUntil : request.ExpiresAt;
                await NonQueryAsync(
                    connection,
                    transaction,
                    "UPDATE statement_approvals SET status = $1, required = $2, expires_ms = $3 WHERE id = $4",
                    [status.ToString(), (long)required, ToMs(expires), id],
                    cancellationToken).ConfigureAwait(false);
                return (request with { Status = status, Required = required, ExpiresAt = expires }, reopened);
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<bool> CancelAsync(string id, string by, DateTimeOffset now, CancellationToken cancellationToken) =>
        await InTransactionAsync(
            async (connection, transaction) =>
            {
                var request = await LockedStatementAsync(connection, transaction, id, now, cancellationToken).ConfigureAwait(false);
                if (request is not { Status: StatementApprovalStatus.Pending })
                {
                    return false;
                }

                var votes = request.Votes.Append(new ApprovalVote(by, false, now, "cancelled")).ToList();
                return await NonQueryAsync(
                    connection,
                    transaction,
                    "UPDATE statement_approvals SET status = 'Cancelled', votes_json = $1 WHERE id = $2 AND status = 'Pending'",
                    [JsonSerializer.Serialize(votes), id],
                    cancellationToken).ConfigureAwait(false) == 1;
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<bool> ClaimAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        await ExecuteStateAsync(
            "UPDATE statement_approvals SET status = 'Running' WHERE id = $1 AND status = 'Approved' AND expires_ms > $2",
            [id, ToMs(now)],
            cancellationToken).ConfigureAwait(false) == 1;

    public async ValueTask SetReviewAsync(string id, string review, CancellationToken cancellationToken) =>
        await ExecuteStateAsync("UPDATE statement_approvals SET review = $1 WHERE id = $2", [review, id], cancellationToken).ConfigureAwait(false);

    public async ValueTask FinishRunAsync(string id, string? result, DateTimeOffset until, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await ExecuteStateAsync(
            "UPDATE statement_approvals SET status = 'Used', kept_result = $1, kept_until_ms = $2 WHERE id = $3",
            [result, ToMs(until), id],
            cancellationToken).ConfigureAwait(false);
        // Apart from the finish, which a failure here must not undo; the next finish or filing tries again.
        await ForgetLapsedResultsAsync(now, cancellationToken).ConfigureAwait(false);
    }

    private async Task ForgetLapsedResultsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            await ExecuteStateAsync(ForgetLapsedResults, [ToMs(now)], cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is DbException or TimeoutException or IOException)
        {
            // Best effort: the results are hidden once lapsed whether or not they are gone yet.
        }
    }

    // A kept result is read only until kept_until_ms, but it stayed in the row, in backups too, and a caller with unmask rights
    // saw values unmasked. Deleted when a run finishes or a statement request is filed, whichever comes first.
    private const string ForgetLapsedResults = "UPDATE statement_approvals SET kept_result = NULL WHERE kept_result IS NOT NULL AND kept_until_ms <= $1";

    /// <summary>How many kept results the store still holds, lapsed or not.</summary>
    internal async Task<int> CountKeptResultsAsync(CancellationToken cancellationToken) =>
        (int)(await AuditQueryAsync("SELECT count(*) FROM statement_approvals WHERE kept_result IS NOT NULL", [], r => r.GetInt64(0), cancellationToken).ConfigureAwait(false)).Single();

    /// <summary>Hands a kept result over once: read and cleared in one transaction.</summary>
    public async ValueTask<string?> TakeResultAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        await InTransactionAsync(
            async (connection, transaction) =>
            {
                var kept = (await RowsAsync(
                    connection,
                    transaction,
                    $"SELECT kept_result FROM statement_approvals WHERE id = $1 AND kept_result IS NOT NULL AND kept_until_ms > $2{LockRow}",
                    [id, ToMs(now)],
                    r => r.GetString(0),
                    cancellationToken).ConfigureAwait(false)).FirstOrDefault();
                await NonQueryAsync(connection, transaction, "UPDATE statement_approvals SET kept_result = NULL WHERE id = $1", [id], cancellationToken).ConfigureAwait(false);
                return kept;
            },
            cancellationToken).ConfigureAwait(false);

    private async Task<StatementApproval?> LockedStatementAsync(DbConnection connection, DbTransaction transaction, string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await RowsAsync(
            connection,
            transaction,
            $"SELECT {StatementColumns} FROM statement_approvals WHERE id = $1{LockRow}",
            [id],
            r => ReadStatement(r, now),
            cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    private static StatementApproval ReadStatement(DbDataReader r, DateTimeOffset now)
    {
        var status = Enum.Parse<StatementApprovalStatus>(r.GetString(13));
        var expires = FromMs(r.GetInt64(15));
        // A run that never finished (the process died) lapses with its approval, so a new request can be filed.
        if (status is StatementApprovalStatus.Pending or StatementApprovalStatus.Approved or StatementApprovalStatus.Running && expires <= now)
        {
            status = StatementApprovalStatus.Expired;
        }

        var keptUntil = Long(r, 19) is { } until ? FromMs(until) : (DateTimeOffset?)null;
        return new StatementApproval(
            r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), r.GetString(7),
            Text(r, 8), r.GetString(9), r.GetString(10), r.GetString(11), (int)r.GetInt64(12), status, FromMs(r.GetInt64(14)), expires)
        {
            Votes = JsonSerializer.Deserialize<List<ApprovalVote>>(r.GetString(16)) ?? [],
            DryRunRows = Long(r, 17),
            KeptResult = keptUntil > now ? Text(r, 18) : null,
            KeptUntil = keptUntil,
            Review = Text(r, 20),
            DryRunSample = Text(r, 21),
            DelegatedBy = Text(r, 22),
        };
    }
}
