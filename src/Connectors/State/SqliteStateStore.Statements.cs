using System.Text.Json;
using Gatehouse.Enforcement.Approvals;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Connectors.State;

public sealed partial class SqliteStateStore : IStatementApprovalStore
{
    private const string StatementColumns =
        "id, agent, subject, issuer, connection, statement_hash, parameters_hash, sql, parameters, classification, rule, reason, required,"
        + " status, created_ms, expires_ms, votes_json, dry_run_rows, kept_result, kept_until_ms, review, dry_run_sample";

    public async ValueTask<StatementApproval?> FindLiveAsync(string agent, string connection, string statementHash, string parametersHash, DateTimeOffset decidedSince, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await QueryAsync(
            $"SELECT {StatementColumns} FROM statement_approvals WHERE agent = $agent AND connection = $connection AND statement_hash = $statement"
            + " AND parameters_hash = $parameters AND ((status IN ('Pending', 'Approved', 'Running') AND expires_ms > $now)"
            + " OR (status = 'Used' AND kept_result IS NOT NULL AND kept_until_ms > $now)"
            + " OR (status IN ('Denied', 'Cancelled') AND created_ms > $since))"
            // A result waiting for its requester comes first: a newer request must not hide it.
            + " ORDER BY kept_result IS NOT NULL DESC, created_ms DESC LIMIT 1",
            p =>
            {
                p.AddWithValue("$agent", agent);
                p.AddWithValue("$connection", connection);
                p.AddWithValue("$statement", statementHash);
                p.AddWithValue("$parameters", parametersHash);
                p.AddWithValue("$now", ToMs(now));
                p.AddWithValue("$since", ToMs(decidedSince));
            },
            r => ReadStatement(r, now),
            cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    public async ValueTask CreateStatementAsync(StatementApproval request, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            $"INSERT INTO statement_approvals ({StatementColumns}) VALUES ($id, $agent, $subject, $issuer, $connection, $statement, $parameters_hash,"
            + " $sql, $parameters, $classification, $rule, $reason, $required, 'Pending', $created, $expires, '[]', $dry_run, NULL, NULL, NULL, $sample)",
            p =>
            {
                p.AddWithValue("$id", request.Id);
                p.AddWithValue("$agent", request.Agent);
                p.AddWithValue("$subject", request.Subject);
                p.AddWithValue("$issuer", request.Issuer);
                p.AddWithValue("$connection", request.Connection);
                p.AddWithValue("$statement", request.StatementHash);
                p.AddWithValue("$parameters_hash", request.ParametersHash);
                p.AddWithValue("$sql", request.Sql);
                p.AddWithValue("$parameters", Db(request.Parameters));
                p.AddWithValue("$classification", request.Classification);
                p.AddWithValue("$rule", request.Rule);
                p.AddWithValue("$reason", request.Reason);
                p.AddWithValue("$required", request.Required);
                p.AddWithValue("$created", ToMs(request.CreatedAt));
                p.AddWithValue("$expires", ToMs(request.ExpiresAt));
                p.AddWithValue("$dry_run", Db(request.DryRunRows));
                p.AddWithValue("$sample", Db(request.DryRunSample));
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<StatementApproval?> GetStatementAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {StatementColumns} FROM statement_approvals WHERE id = $id", p => p.AddWithValue("$id", id), r => ReadStatement(r, now), cancellationToken).ConfigureAwait(false))
        .FirstOrDefault();

    public async ValueTask<IReadOnlyList<StatementApproval>> ListStatementsAsync(bool all, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync($"SELECT {StatementColumns} FROM statement_approvals ORDER BY created_ms DESC LIMIT 1000", _ => { }, r => ReadStatement(r, now), cancellationToken).ConfigureAwait(false);
        return all ? rows : rows.Where(r => r.Status == StatementApprovalStatus.Pending).ToList();
    }

    public async ValueTask<StatementApproval?> VoteAsync(string id, ApprovalVote vote, TimeSpan approvalLifetime, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // One write transaction (BEGIN IMMEDIATE): two approvers deciding at once are counted one after the other.
        await using var connection = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        StatementApproval? request;
        await using (var read = connection.CreateCommand())
        {
            read.Transaction = transaction;
            read.CommandText = $"SELECT {StatementColumns} FROM statement_approvals WHERE id = $id";
            read.Parameters.AddWithValue("$id", id);
            await using var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            request = await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadStatement(reader, now) : null;
        }

        // Checked again inside the write transaction: two decisions by one person arriving at once count once.
        if (request is not { Status: StatementApprovalStatus.Pending } || request.RefuseApprover(vote.Approver) is not null)
        {
            return null;
        }

        var votes = request.Votes.Append(vote).ToList();
        var status = !vote.Approve ? StatementApprovalStatus.Denied
            : votes.Count(v => v.Approve) >= request.Required ? StatementApprovalStatus.Approved
            : StatementApprovalStatus.Pending;
        var expires = status == StatementApprovalStatus.Approved ? now + approvalLifetime : request.ExpiresAt;
        await using (var update = connection.CreateCommand())
        {
            update.Transaction = transaction;
            update.CommandText = "UPDATE statement_approvals SET status = $status, votes_json = $votes, expires_ms = $expires WHERE id = $id";
            update.Parameters.AddWithValue("$status", status.ToString());
            update.Parameters.AddWithValue("$votes", JsonSerializer.Serialize(votes));
            update.Parameters.AddWithValue("$expires", ToMs(expires));
            update.Parameters.AddWithValue("$id", id);
            await update.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return request with { Status = status, Votes = votes, ExpiresAt = expires };
    }

    public async ValueTask<bool> CancelAsync(string id, string by, DateTimeOffset now, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "UPDATE statement_approvals SET status = 'Cancelled', votes_json = json_insert(votes_json, '$[#]', json_object('Approver', $by, 'Approve', json('false'), 'At', $at, 'Note', 'cancelled'))"
            + " WHERE id = $id AND status = 'Pending' AND expires_ms > $now",
            p =>
            {
                p.AddWithValue("$by", by);
                p.AddWithValue("$at", now.ToString("O"));
                p.AddWithValue("$id", id);
                p.AddWithValue("$now", ToMs(now));
            },
            cancellationToken).ConfigureAwait(false) == 1;

    public async ValueTask<bool> ClaimAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "UPDATE statement_approvals SET status = 'Running' WHERE id = $id AND status = 'Approved' AND expires_ms > $now",
            p =>
            {
                p.AddWithValue("$id", id);
                p.AddWithValue("$now", ToMs(now));
            },
            cancellationToken).ConfigureAwait(false) == 1;

    public async ValueTask SetReviewAsync(string id, string review, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "UPDATE statement_approvals SET review = $review WHERE id = $id",
            p =>
            {
                p.AddWithValue("$review", review);
                p.AddWithValue("$id", id);
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask FinishRunAsync(string id, string? result, DateTimeOffset until, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "UPDATE statement_approvals SET status = 'Used', kept_result = $result, kept_until_ms = $until WHERE id = $id",
            p =>
            {
                p.AddWithValue("$result", Db(result));
                p.AddWithValue("$until", ToMs(until));
                p.AddWithValue("$id", id);
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<string?> TakeResultAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var take = connection.CreateCommand();
        take.Transaction = transaction;
        take.CommandText = "SELECT kept_result FROM statement_approvals WHERE id = $id AND kept_result IS NOT NULL AND kept_until_ms > $now;"
            + " UPDATE statement_approvals SET kept_result = NULL WHERE id = $id";
        take.Parameters.AddWithValue("$id", id);
        take.Parameters.AddWithValue("$now", ToMs(now));
        var result = (string?)await take.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return result;
    }

    private static StatementApproval ReadStatement(SqliteDataReader r, DateTimeOffset now)
    {
        var status = Enum.Parse<StatementApprovalStatus>(r.GetString(13));
        var expires = FromMs(r.GetInt64(15));
        // A run that never finished (the process died) lapses with its approval, so a new request can be filed.
        if (status is StatementApprovalStatus.Pending or StatementApprovalStatus.Approved or StatementApprovalStatus.Running && expires <= now)
        {
            status = StatementApprovalStatus.Expired;
        }

        var keptUntil = NullableLong(r, 19) is { } until ? FromMs(until) : (DateTimeOffset?)null;
        return new StatementApproval(
            r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), r.GetString(7),
            NullableString(r, 8), r.GetString(9), r.GetString(10), r.GetString(11), r.GetInt32(12), status, FromMs(r.GetInt64(14)), expires)
        {
            Votes = JsonSerializer.Deserialize<List<ApprovalVote>>(r.GetString(16)) ?? [],
            DryRunRows = NullableLong(r, 17),
            KeptResult = keptUntil > now ? NullableString(r, 18) : null,
            KeptUntil = keptUntil,
            Review = NullableString(r, 20),
            DryRunSample = NullableString(r, 21),
        };
    }
}
