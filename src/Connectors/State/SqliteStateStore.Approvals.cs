using System.Text.Json;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Connectors.State;

public sealed partial class SqliteStateStore : IApprovalStore
{
    private const string RequestColumns =
        "id, agent, subject, issuer, connection, tables_json, access, reason, duration_ms, status, created_ms, decided_ms, decided_by, decision_note, grant_expires_ms, schemas_json, unmask";

    public async ValueTask CreateAsync(AccessRequest request, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            $"INSERT INTO access_requests ({RequestColumns}) VALUES ($id, $agent, $subject, $issuer, $connection, $tables, $access, $reason, $duration, 'Pending', $created, NULL, NULL, NULL, NULL, $schemas, $unmask)",
            p =>
            {
                p.AddWithValue("$id", request.Id);
                p.AddWithValue("$agent", request.Agent);
                p.AddWithValue("$subject", request.Subject);
                p.AddWithValue("$issuer", request.Issuer);
                p.AddWithValue("$connection", request.Connection);
                p.AddWithValue("$tables", JsonSerializer.Serialize(request.Tables.Select(t => t.ToString())));
                p.AddWithValue("$access", request.Access.ToPolicyString());
                p.AddWithValue("$reason", request.Reason);
                p.AddWithValue("$duration", (long)request.Duration.TotalMilliseconds);
                p.AddWithValue("$created", ToMs(request.CreatedAt));
                p.AddWithValue("$schemas", JsonSerializer.Serialize(request.Schemas));
                p.AddWithValue("$unmask", Db(request.Unmask));
            },
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<AccessRequest?> GetAsync(string id, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {RequestColumns} FROM access_requests WHERE id = $id", p => p.AddWithValue("$id", id), r => ReadRequest(r, now), cancellationToken).ConfigureAwait(false))
        .FirstOrDefault();

    public async ValueTask<IReadOnlyList<AccessRequest>> ListAsync(AccessRequestStatus? status, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var all = await QueryAsync($"SELECT {RequestColumns} FROM access_requests ORDER BY created_ms DESC LIMIT 1000", _ => { }, r => ReadRequest(r, now), cancellationToken).ConfigureAwait(false);
        return status is null ? all : all.Where(r => r.Status == status).ToList();
    }

    public async ValueTask<bool> DecideAsync(string id, bool approve, string decidedBy, string? note, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Only a pending, unexpired request changes; the WHERE clause makes the transition atomic across processes.
        var changed = await ExecuteAsync(
            "UPDATE access_requests SET status = $status, decided_ms = $now, decided_by = $by, decision_note = $note,"
            + " grant_expires_ms = CASE WHEN $approve THEN $now + duration_ms ELSE NULL END"
            + " WHERE id = $id AND status = 'Pending' AND created_ms > $pendingCutoff",
            p =>
            {
                p.AddWithValue("$status", approve ? nameof(AccessRequestStatus.Approved) : nameof(AccessRequestStatus.Denied));
                p.AddWithValue("$now", ToMs(now));
                p.AddWithValue("$by", decidedBy);
                p.AddWithValue("$note", Db(note));
                p.AddWithValue("$approve", approve);
                p.AddWithValue("$id", id);
                p.AddWithValue("$pendingCutoff", ToMs(now - AccessRequest.PendingLifetime));
            },
            cancellationToken).ConfigureAwait(false);
        return changed == 1;
    }

    public async ValueTask<bool> RevokeAsync(string id, string revokedBy, DateTimeOffset now, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "UPDATE access_requests SET status = 'Revoked', grant_expires_ms = $now,"
            + " decision_note = coalesce(decision_note || '; ', '') || 'revoked by ' || $by"
            + " WHERE id = $id AND status = 'Approved' AND grant_expires_ms > $now",
            p =>
            {
                p.AddWithValue("$now", ToMs(now));
                p.AddWithValue("$by", revokedBy);
                p.AddWithValue("$id", id);
            },
            cancellationToken).ConfigureAwait(false) == 1;

    public async ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken) =>
        await QueryAsync(
            $"SELECT {RequestColumns} FROM access_requests WHERE agent = $agent AND status = 'Approved' AND grant_expires_ms > $now",
            p =>
            {
                p.AddWithValue("$agent", agent);
                p.AddWithValue("$now", ToMs(now));
            },
            r => ReadRequest(r, now).ToGrant(),
            cancellationToken).ConfigureAwait(false);

    private static AccessRequest ReadRequest(SqliteDataReader r, DateTimeOffset now)
    {
        var tables = JsonSerializer.Deserialize<string[]>(r.GetString(5))!
            .Select(t => RelationName.TryParse(t, out var rel) ? rel : throw new InvalidDataException($"Stored table name '{t}' is invalid."))
            .ToList();
        AccessLevels.TryParse(r.GetString(6), out var access);
        var created = FromMs(r.GetInt64(10));
        var grantExpires = NullableLong(r, 14) is { } ms ? FromMs(ms) : (DateTimeOffset?)null;
        var status = Enum.Parse<AccessRequestStatus>(r.GetString(9));
        // Expiry is derived on read, so no background job is needed to keep statuses honest.
        if ((status == AccessRequestStatus.Pending && created + AccessRequest.PendingLifetime <= now)
            || (status == AccessRequestStatus.Approved && grantExpires <= now))
        {
            status = AccessRequestStatus.Expired;
        }

        return new AccessRequest(
            r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), tables, access, r.GetString(7),
            TimeSpan.FromMilliseconds(r.GetInt64(8)), status, created,
            NullableLong(r, 11) is { } decided ? FromMs(decided) : null, NullableString(r, 12), NullableString(r, 13), grantExpires)
        {
            Schemas = NullableString(r, 15) is { } schemas ? JsonSerializer.Deserialize<string[]>(schemas) ?? [] : [],
            Unmask = NullableString(r, 16),
        };
    }
}
