using System.Text.Json;
using Gatehouse.Enforcement.Audit;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Connectors.State;

public sealed partial class SqliteStateStore : IAuditStore
{
    private const string AuditColumns =
        "id, time_ms, tool, transport, session_id, agent, groups_json, issuer, subject, token_id, connection, sql, parameters,"
        + " classification, decision, rule, reason, row_count, duration_ms, error, masking";

    public async ValueTask BeginAsync(AuditRecord record, CancellationToken cancellationToken) =>
        await ExecuteAsync($"INSERT INTO audit ({AuditColumns}) VALUES ({Placeholders()})", p => BindAudit(p, record), cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Stores the record's final state and seals it into the hash chain, in one write transaction: the chain entry holds
    /// the record exactly as stored and the hash of the entry before it, so changing, removing, adding or reordering records
    /// shows in <see cref="VerifyChainAsync"/>.
    /// </summary>
    public async ValueTask CompleteAsync(AuditRecord record, CancellationToken cancellationToken)
    {
        var stored = record with { Time = FromMs(ToMs(record.Time)) };
        await using var connection = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var write = connection.CreateCommand())
        {
            write.Transaction = transaction;
            write.CommandText = $"INSERT OR REPLACE INTO audit ({AuditColumns}) VALUES ({Placeholders()})";
            BindAudit(write.Parameters, stored);
            await write.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        string prev;
        await using (var last = connection.CreateCommand())
        {
            last.Transaction = transaction;
            last.CommandText = "SELECT hash FROM audit_chain ORDER BY seq DESC LIMIT 1";
            prev = (string?)await last.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) ?? AuditChain.Genesis;
        }

        var sealedRecord = AuditChain.Canonical(stored);
        await using (var seal = connection.CreateCommand())
        {
            seal.Transaction = transaction;
            seal.CommandText = "INSERT INTO audit_chain (record_id, prev, hash, sealed) VALUES ($id, $prev, $hash, $sealed)";
            seal.Parameters.AddWithValue("$id", stored.Id);
            seal.Parameters.AddWithValue("$prev", prev);
            seal.Parameters.AddWithValue("$hash", AuditChain.Hash(prev, sealedRecord));
            seal.Parameters.AddWithValue("$sealed", sealedRecord);
            await seal.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One session's calls (an MCP session, or a stdio process's lifetime), oldest first.</summary>
    public async Task<IReadOnlyList<AuditRecord>> SessionAsync(string sessionId, CancellationToken cancellationToken) =>
        await QueryAsync(
            $"SELECT {AuditColumns} FROM audit WHERE session_id = $session ORDER BY time_ms, id LIMIT 10000",
            p => p.AddWithValue("$session", sessionId),
            ReadAudit,
            cancellationToken).ConfigureAwait(false);

    /// <summary>Recent sessions, newest first: who, when, how many calls and refusals.</summary>
    public async Task<IReadOnlyList<SessionSummary>> SessionsAsync(string? agent, int limit, CancellationToken cancellationToken) =>
        await QueryAsync(
            "SELECT session_id, max(agent), min(time_ms), max(time_ms), count(*), sum(decision = 'Denied'), sum(decision = 'Failed') FROM audit"
            + " WHERE session_id IS NOT NULL AND ($agent IS NULL OR agent = $agent) GROUP BY session_id ORDER BY max(time_ms) DESC LIMIT $limit",
            p =>
            {
                p.AddWithValue("$agent", Db(agent));
                p.AddWithValue("$limit", limit);
            },
            r => new SessionSummary(r.GetString(0), NullableString(r, 1), FromMs(r.GetInt64(2)), FromMs(r.GetInt64(3)), r.GetInt32(4), r.GetInt32(5), r.GetInt32(6)),
            cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Retention: removes records finished before <paramref name="before"/> and their chain links, in one transaction, and leaves
    /// a checkpoint signed with <paramref name="sign"/> where the chain now starts, so what remains still verifies.
    /// </summary>
    public async Task<ChainCheckpoint?> PurgeAsync(DateTimeOffset before, Func<string, string> sign, CancellationToken cancellationToken)
    {
        await using var connection = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        SqliteCommand Command(string sql, params (string Name, object Value)[] parameters)
        {
            var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = sql;
            foreach (var (name, value) in parameters)
            {
                command.Parameters.AddWithValue(name, value);
            }

            return command;
        }

        async Task<object?> ScalarAsync(string sql, params (string Name, object Value)[] parameters)
        {
            await using var command = Command(sql, parameters);
            return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        }

        // The cut: the last link that seals a record from before the cutoff. Everything up to it goes; a record sealed again
        // after the cut keeps its newer link and stays.
        var through = await ScalarAsync(
            "SELECT max(c.seq) FROM audit_chain c JOIN audit a ON a.id = c.record_id WHERE a.time_ms < $before", ("$before", ToMs(before))) is long seq ? seq : 0;
        if (through == 0)
        {
            return null;
        }

        var lastHash = (string)(await ScalarAsync("SELECT hash FROM audit_chain WHERE seq = $seq", ("$seq", through)))!;
        int purged;
        await using (var delete = Command("DELETE FROM audit WHERE id IN (SELECT record_id FROM audit_chain GROUP BY record_id HAVING max(seq) <= $seq)", ("$seq", through)))
        {
            purged = await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await ScalarAsync("DELETE FROM audit_chain WHERE seq <= $seq", ("$seq", through));
        var at = FromMs(ToMs(DateTimeOffset.UtcNow));
        var checkpoint = new ChainCheckpoint(through, lastHash, purged, at, sign(ChainCheckpoint.SignedText(through, lastHash, purged, at)));
        await ScalarAsync(
            "INSERT INTO audit_checkpoints (through_seq, last_hash, purged, at_ms, signature) VALUES ($seq, $hash, $purged, $at, $signature)",
            ("$seq", through), ("$hash", lastHash), ("$purged", purged), ("$at", ToMs(at)), ("$signature", checkpoint.Signature));
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return checkpoint;
    }

    /// <summary>Walks the chain (from the latest purge checkpoint, if any) and compares it with the records: every break, each named.</summary>
    public async Task<ChainReport> VerifyChainAsync(Func<string, string, bool>? signatureValid, CancellationToken cancellationToken)
    {
        var checkpoint = (await QueryAsync(
            "SELECT through_seq, last_hash, purged, at_ms, signature FROM audit_checkpoints ORDER BY through_seq DESC LIMIT 1",
            _ => { },
            r => new ChainCheckpoint(r.GetInt64(0), r.GetString(1), r.GetInt32(2), FromMs(r.GetInt64(3)), r.GetString(4)),
            cancellationToken).ConfigureAwait(false)).FirstOrDefault();
        var entries = await QueryAsync(
            "SELECT seq, record_id, prev, hash, sealed FROM audit_chain ORDER BY seq",
            _ => { },
            r => new ChainEntry(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4)),
            cancellationToken).ConfigureAwait(false);
        var records = await QueryAsync($"SELECT {AuditColumns} FROM audit", _ => { }, ReadAudit, cancellationToken).ConfigureAwait(false);
        return AuditChain.Verify(entries, records, checkpoint, signatureValid);
    }

    public async ValueTask<AuditRecord?> GetAsync(string id, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {AuditColumns} FROM audit WHERE id = $id", p => p.AddWithValue("$id", id), ReadAudit, cancellationToken).ConfigureAwait(false))
        .FirstOrDefault();

    public async ValueTask<IReadOnlyList<AuditRecord>> ListAsync(AuditQuery query, CancellationToken cancellationToken) =>
        await QueryAsync(
            $"SELECT {AuditColumns} FROM audit WHERE ($agent IS NULL OR agent = $agent) AND ($since IS NULL OR time_ms >= $since)"
            + " AND ($decision IS NULL OR decision = $decision) ORDER BY time_ms DESC, id DESC LIMIT $limit",
            p =>
            {
                p.AddWithValue("$agent", Db(query.Agent));
                p.AddWithValue("$since", query.Since is { } since ? ToMs(since) : DBNull.Value);
                p.AddWithValue("$decision", Db(query.Decision?.ToString()));
                p.AddWithValue("$limit", query.Limit);
            },
            ReadAudit,
            cancellationToken).ConfigureAwait(false);

    private static string Placeholders() => string.Join(", ", AuditColumns.Split(',').Select((_, i) => $"$p{i}"));

    private static void BindAudit(SqliteParameterCollection p, AuditRecord r)
    {
        object?[] values =
        [
            r.Id, ToMs(r.Time), r.Tool, r.Transport, r.SessionId, r.Agent, JsonSerializer.Serialize(r.Groups), r.Issuer, r.Subject, r.TokenId,
            r.Connection, r.Sql, r.Parameters, r.Classification, r.Decision.ToString(), r.Rule, r.Reason, r.RowCount, r.DurationMs, r.Error,
            r.Masking,
        ];
        for (var i = 0; i < values.Length; i++)
        {
            p.AddWithValue($"$p{i}", Db(values[i]));
        }
    }

    private static AuditRecord ReadAudit(SqliteDataReader r) => new()
    {
        Id = r.GetString(0),
        Time = FromMs(r.GetInt64(1)),
        Tool = r.GetString(2),
        Transport = r.GetString(3),
        SessionId = NullableString(r, 4),
        Agent = NullableString(r, 5),
        Groups = JsonSerializer.Deserialize<string[]>(r.GetString(6)) ?? [],
        Issuer = NullableString(r, 7),
        Subject = NullableString(r, 8),
        TokenId = NullableString(r, 9),
        Connection = NullableString(r, 10),
        Sql = NullableString(r, 11),
        Parameters = NullableString(r, 12),
        Classification = NullableString(r, 13),
        Decision = Enum.Parse<Verdict>(r.GetString(14)),
        Rule = r.GetString(15),
        Reason = r.GetString(16),
        RowCount = NullableLong(r, 17),
        DurationMs = r.GetDouble(18),
        Error = NullableString(r, 19),
        Masking = NullableString(r, 20),
    };
}
