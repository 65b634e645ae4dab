using System.Data;
using System.Data.Common;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Gatehouse.Enforcement.Audit;
using Microsoft.Win32.SafeHandles;

namespace Gatehouse.Connectors.State;

/// <summary>
/// The audit log over plain ADO.NET, written once for both stores: the embedded SQLite file and the PostgreSQL database that
/// several gateway instances share. The SQL is the common subset of both (parameters are <c>$1..$n</c>, which SQLite reads as
/// names and PostgreSQL as positions); a store supplies connections, parameter binding and how the chain is locked.
/// </summary>
public abstract partial class SqlAuditLog : IAuditLog
{
    protected const string AuditColumns =
        "id, time_ms, tool, transport, session_id, agent, groups_json, issuer, subject, token_id, connection, sql, parameters,"
        + " classification, decision, rule, reason, row_count, duration_ms, error, masking, result, client_id, delegated_by";

    private static readonly int ColumnCount = AuditColumns.Split(',').Length;

    private static readonly string Values = string.Join(", ", Enumerable.Range(1, ColumnCount).Select(i => $"${i}"));

    // The columns SQLite's audit indexes hold besides id. A call's started and finished records share them (its time and agent
    // are set before it starts), and SQLite rewrites an index's entry whenever an update sets one of its columns, even to the
    // same value. (PostgreSQL, which also indexes session_id, touches an index only when a value in it changes.)
    private static readonly string[] IndexedColumns = ["time_ms", "agent"];

    private static string Upsert(IEnumerable<string> columns) => string.Join(", ", columns.Select(c => $"{c} = excluded.{c}"));

    private static readonly string[] UpdatedColumns = [.. AuditColumns.Split(',').Skip(1).Select(c => c.Trim())];

    // Beside the fields they are built from: static initializers run in text order only within one file of a partial class.
    private static readonly string InsertStarted = $"INSERT INTO audit ({AuditColumns}) VALUES ({Values})";

    /// <summary>
    /// A finished record: inserted, or completing its started record in place, leaving the indexes alone. Changes no row when
    /// the started record has another time or agent; <see cref="InsertFinishedRewritten"/> then rewrites it whole.
    /// </summary>
    private static readonly string InsertFinished = $"INSERT INTO audit ({AuditColumns}) VALUES ({Values}) ON CONFLICT (id) DO UPDATE SET "
        + Upsert(UpdatedColumns.Except(IndexedColumns))
        + " WHERE " + string.Join(" AND ", IndexedColumns.Select(c => $"audit.{c} IS NOT DISTINCT FROM excluded.{c}"));

    private static readonly string InsertFinishedRewritten = $"INSERT INTO audit ({AuditColumns}) VALUES ({Values}) ON CONFLICT (id) DO UPDATE SET {Upsert(UpdatedColumns)}";

    private const int ExportPage = 500;

    protected abstract Task<DbConnection> OpenAuditConnectionAsync(CancellationToken cancellationToken);

    /// <summary>
    /// The session setting that makes the writer's next commits wait for the disk (flush) or only for the operating system;
    /// a store whose commits are sent in batches says so per transaction instead (<see cref="NoFlushStatement"/>).
    /// </summary>
    protected virtual string FlushSetting(bool flush) => throw new NotSupportedException("This store says per transaction whether a commit waits for the disk.");

    /// <summary>
    /// The file the writer flushes to disk itself after a commit, outside the store's write lock, instead of having the commit
    /// wait for the disk while it holds that lock; null to use <see cref="FlushSetting"/>. Opened on the writer's connection,
    /// and kept while that connection is.
    /// </summary>
    protected virtual Task<SafeFileHandle?> OpenLogFileAsync(DbConnection writer, CancellationToken cancellationToken) => Task.FromResult<SafeFileHandle?>(null);

    /// <summary>Adds positional values to a command whose SQL uses <c>$1..$n</c>.</summary>
    protected abstract void Bind(DbCommand command, IReadOnlyList<object?> values);

    /// <summary>
    /// Serializes appends to the chain, inside the write transaction and after its first write, with
    /// <see cref="ChainLockStatement"/>. SQLite needs nothing (that write already holds the file's write lock); PostgreSQL
    /// takes a transaction-scoped advisory lock.
    /// </summary>
    private async Task LockChainAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        if (ChainLockStatement is not { } chainLock)
        {
            return;
        }

        await using var command = connection.CreateCommand();
        command.CommandText = chainLock;
        command.Transaction = transaction;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether the writer sends a commit's statements in batches of several per round trip: for a store across the network.</summary>
    protected virtual bool BatchesCommits => false;

    /// <summary>
    /// The isolation of the store's write transactions (a purge, state changes). SQLite's default (its write lock taken at
    /// BEGIN) serializes them; PostgreSQL's must be READ COMMITTED whatever the server's default, so that a statement after a
    /// lock reads what the lock's previous holder committed.
    /// </summary>
    protected virtual System.Data.IsolationLevel StateIsolation => System.Data.IsolationLevel.Unspecified;

    /// <summary>The statement that takes the chain lock (<see cref="LockChainAsync"/>), alone or in a batch; null where the store needs none.</summary>
    protected virtual string? ChainLockStatement => null;

    /// <summary>For commits sent in batches: the statement that lets the transaction it runs in commit without waiting for the disk.</summary>
    protected virtual string? NoFlushStatement => null;

    /// <summary>
    /// For commits sent in batches: the statement that makes the transaction it runs in wait for the disk, whatever the
    /// server was told for the database or role; null where the store's default already does.
    /// </summary>
    protected virtual string? FlushStatement => null;

    /// <summary>An expression true when <paramref name="haystack"/> contains <paramref name="needle"/> (both text).</summary>
    protected abstract string Contains(string haystack, string needle);

    /// <summary>The store's own clock, in Unix milliseconds: what a retention age is measured by.</summary>
    protected abstract string NowMsSql { get; }

    private async Task<(long Seq, string Hash)> CheckpointStartAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        var checkpoint = await RowsAsync(
            connection,
            transaction,
            "SELECT through_seq, last_hash FROM audit_checkpoints ORDER BY through_seq DESC LIMIT 1",
            [],
            r => (r.GetInt64(0), r.GetString(1)),
            cancellationToken).ConfigureAwait(false);
        return checkpoint.Count == 1 ? checkpoint[0] : (0, AuditChain.Genesis);
    }

    public async Task<IReadOnlyList<AuditRecord>> SessionAsync(string sessionId, CancellationToken cancellationToken) =>
        await AuditQueryAsync($"SELECT {AuditColumns} FROM audit WHERE session_id = $1 ORDER BY time_ms, id LIMIT 10000", [sessionId], ReadAudit, cancellationToken).ConfigureAwait(false);

    public async Task<IReadOnlyList<SessionSummary>> SessionsAsync(string? agent, int limit, CancellationToken cancellationToken) =>
        await AuditQueryAsync(
            "SELECT session_id, max(agent), min(time_ms), max(time_ms), count(*), " + CountWhere("decision = 'Denied'") + ", " + CountWhere("decision = 'Failed'") + " FROM audit"
            + " WHERE session_id IS NOT NULL AND (CAST($1 AS TEXT) IS NULL OR agent = CAST($1 AS TEXT)) GROUP BY session_id ORDER BY max(time_ms) DESC LIMIT $2",
            [agent, (long)limit],
            r => new SessionSummary(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), FromMs(r.GetInt64(2)), FromMs(r.GetInt64(3)), (int)r.GetInt64(4), (int)r.GetInt64(5), (int)r.GetInt64(6)),
            cancellationToken).ConfigureAwait(false);

    public async Task<IReadOnlyList<AgentActivity>> AgentActivityAsync(CancellationToken cancellationToken) =>
        await AuditQueryAsync(
            "SELECT agent, min(time_ms), max(time_ms), count(*), " + CountWhere("decision = 'Denied'") + ", min(issuer), max(issuer) FROM audit WHERE agent IS NOT NULL GROUP BY agent ORDER BY agent",
            [],
            r => new AgentActivity(
                r.GetString(0), FromMs(r.GetInt64(1)), FromMs(r.GetInt64(2)), r.GetInt64(3), r.GetInt64(4),
                new[] { Text(r, 5), Text(r, 6) }.OfType<string>().Distinct(StringComparer.Ordinal).ToList()),
            cancellationToken).ConfigureAwait(false);

    public async ValueTask<AuditRecord?> GetAsync(string id, CancellationToken cancellationToken) =>
        (await AuditQueryAsync($"SELECT {AuditColumns} FROM audit WHERE id = $1", [id], ReadAudit, cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    public async ValueTask<IReadOnlyList<AuditRecord>> ListAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        // A table filter matches a relation as the classification lists it: "select: public.orders(read), ...".
        var table = query.Table?.Trim();
        return await AuditQueryAsync(
            $"SELECT {AuditColumns} FROM audit WHERE (CAST($1 AS TEXT) IS NULL OR agent = CAST($1 AS TEXT))"
            + " AND (CAST($2 AS BIGINT) IS NULL OR time_ms >= CAST($2 AS BIGINT)) AND (CAST($3 AS BIGINT) IS NULL OR time_ms < CAST($3 AS BIGINT))"
            + " AND (CAST($4 AS TEXT) IS NULL OR decision = CAST($4 AS TEXT)) AND (CAST($5 AS TEXT) IS NULL OR connection = CAST($5 AS TEXT))"
            + " AND (CAST($6 AS TEXT) IS NULL OR tool = CAST($6 AS TEXT))"
            + $" AND (CAST($7 AS TEXT) IS NULL OR {Contains("coalesce(classification, '')", "'.' || CAST($7 AS TEXT) || '('")} OR {Contains("coalesce(classification, '')", "' ' || CAST($7 AS TEXT) || '('")})"
            + $" AND (CAST($8 AS TEXT) IS NULL OR {Contains("lower(coalesce(sql, '') || ' ' || rule || ' ' || reason)", "lower(CAST($8 AS TEXT))")})"
            + " ORDER BY time_ms DESC, id DESC LIMIT $9 OFFSET $10",
            [
                Blank(query.Agent), query.Since is { } since ? ToMs(since) : null, query.Until is { } until ? ToMs(until) : null,
                query.Decision?.ToString(), Blank(query.Connection), Blank(query.Tool), Blank(table), Blank(query.Text),
                (long)Math.Clamp(query.Limit, 1, 100_000), (long)Math.Max(0, query.Offset),
            ],
            ReadAudit,
            cancellationToken).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<AuditRecord> ExportAsync(DateTimeOffset? since, DateTimeOffset? until, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Keyset paging on (time, id): records written during the export neither repeat nor shift the pages. The first page
        // starts just before `since`, after every id at that instant ("z" sorts after the "aud_" ids).
        var afterMs = since is { } s ? ToMs(s) - 1 : long.MinValue;
        var afterId = "z";
        var untilMs = until is { } u ? ToMs(u) : long.MaxValue;
        while (true)
        {
            var page = await AuditQueryAsync(
                $"SELECT {AuditColumns} FROM audit WHERE (time_ms > $1 OR (time_ms = $1 AND id > $2)) AND time_ms < $3 ORDER BY time_ms, id LIMIT $4",
                [afterMs, afterId, untilMs, (long)ExportPage],
                ReadAudit,
                cancellationToken).ConfigureAwait(false);
            foreach (var record in page)
            {
                yield return record;
            }

            if (page.Count < ExportPage)
            {
                yield break;
            }

            afterMs = ToMs(page[^1].Time);
            afterId = page[^1].Id;
        }
    }

    /// <summary>How old a started record must be, besides past the cut, before a purge takes it as a call that never finished.</summary>
    public static readonly TimeSpan AbandonedAfter = TimeSpan.FromDays(1);

    public async Task<ChainCheckpoint?> PurgeAsync(RetentionCut cut, Func<string, string> sign, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAuditConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(StateIsolation, cancellationToken).ConfigureAwait(false);
        // Taken first, so no record is sealed between choosing the cut and removing up to it.
        await LockChainAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
        var beforeMs = cut.Before is { } before ? ToMs(before) : long.MinValue;
        var storeNow = (await RowsAsync(connection, transaction, NowMsSql, [], r => r.GetInt64(0), cancellationToken).ConfigureAwait(false))[0];
        if (cut.OlderThan is { } age)
        {
            beforeMs = Math.Max(beforeMs, storeNow - (long)age.TotalMilliseconds);
        }

        if (cut.KeepNewest is { } keep)
        {
            var oldestKept = await RowsAsync(connection, transaction, "SELECT time_ms FROM audit ORDER BY time_ms DESC, id DESC LIMIT 1 OFFSET $1", [(long)keep], r => r.GetInt64(0), cancellationToken).ConfigureAwait(false);
            if (oldestKept.Count == 1)
            {
                beforeMs = Math.Max(beforeMs, oldestKept[0] + 1);
            }
        }

        // The cut: the chain's longest beginning whose links all seal records from before the cutoff, so it ends just before
        // the first link of a newer one. Not the last link of an old record: a call that waited for approval, or a clock
        // stepped back, puts an old record's link after newer ones, and cutting there would take them too. Everything up to
        // the cut goes; a record sealed again after it keeps its newer link and stays.
        var cutAt = await RowsAsync(
            connection,
            transaction,
            "SELECT coalesce((SELECT min(c.seq) - 1 FROM audit_chain c JOIN audit a ON a.id = c.record_id WHERE a.time_ms >= $1),"
            + " (SELECT max(seq) FROM audit_chain), 0)",
            [beforeMs],
            r => r.IsDBNull(0) ? 0 : r.GetInt64(0),
            cancellationToken).ConfigureAwait(false);
        var through = cutAt.FirstOrDefault();
        var first = await RowsAsync(connection, transaction, "SELECT coalesce(min(seq), 0) FROM audit_chain", [], r => r.GetInt64(0), cancellationToken).ConfigureAwait(false);
        if (through == 0 || through < first[0])
        {
            // Nothing of the chain's beginning is old enough (an earlier purge took what was).
            return null;
        }

        var lastHash = (await RowsAsync(connection, transaction, "SELECT hash FROM audit_chain WHERE seq = $1", [through], r => r.GetString(0), cancellationToken).ConfigureAwait(false))[0];
        var purged = await NonQueryAsync(
            connection,
            transaction,
            "DELETE FROM audit WHERE id IN (SELECT record_id FROM audit_chain GROUP BY record_id HAVING max(seq) <= $1)",
            [through],
            cancellationToken).ConfigureAwait(false);
        await NonQueryAsync(connection, transaction, "DELETE FROM audit_chain WHERE seq <= $1", [through], cancellationToken).ConfigureAwait(false);

        // The started records of calls that never finished (their process died) are in no chain, so no cut reaches them: they
        // go with the records of their time, once a day older than any call runs. A call that did finish after all writes its
        // record whole, as an insert, so nothing would be lost.
        purged += await NonQueryAsync(
            connection,
            transaction,
            "DELETE FROM audit WHERE decision = 'Started' AND time_ms < $1",
            [Math.Min(beforeMs, storeNow - (long)AbandonedAfter.TotalMilliseconds)],
            cancellationToken).ConfigureAwait(false);
        var at = FromMs(ToMs(DateTimeOffset.UtcNow));
        var checkpoint = new ChainCheckpoint(through, lastHash, purged, at, sign(ChainCheckpoint.SignedText(through, lastHash, purged, at)));
        await NonQueryAsync(
            connection,
            transaction,
            "INSERT INTO audit_checkpoints (through_seq, last_hash, purged, at_ms, signature) VALUES ($1, $2, $3, $4, $5)",
            [through, lastHash, (long)purged, ToMs(at), checkpoint.Signature],
            cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return checkpoint;
    }

    public async Task<ChainReport> VerifyChainAsync(Func<string, string, bool>? signatureValid, CancellationToken cancellationToken)
    {
        // One snapshot for all three reads: on a live gateway, a call finished between two of them would look like a record
        // inserted around the gateway, and a purge like deleted links.
        await using var connection = await OpenAuditConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var snapshot = await BeginSnapshotAsync(connection, cancellationToken).ConfigureAwait(false);
        var checkpoint = (await RowsAsync(
            connection,
            snapshot,
            "SELECT through_seq, last_hash, purged, at_ms, signature FROM audit_checkpoints ORDER BY through_seq DESC LIMIT 1",
            [],
            r => new ChainCheckpoint(r.GetInt64(0), r.GetString(1), (int)r.GetInt64(2), FromMs(r.GetInt64(3)), r.GetString(4)),
            cancellationToken).ConfigureAwait(false)).FirstOrDefault();
        var verifier = new ChainVerifier(checkpoint, signatureValid);
        await EachRowAsync(
            connection,
            snapshot,
            "SELECT seq, record_id, prev, hash, sealed FROM audit_chain ORDER BY seq",
            r => verifier.Link(ReadLink(r, 0)),
            cancellationToken).ConfigureAwait(false);

        // Each record beside its latest link, and each latest link whose record is gone: row by row, whatever the log's length.
        await EachRowAsync(connection, snapshot, RecordsBesideTheirLinks, r =>
        {
            // A row changed by hand may not even read as a record (a decision no verdict names, groups that are not JSON):
            // that is tampering to report by its id, not a reason for verify to fail.
            var stored = r.GetInt32(ColumnCount) == 1;
            var latest = r.IsDBNull(ColumnCount + 1) ? null : ReadLink(r, ColumnCount + 1);
            verifier.Record(stored ? (r.IsDBNull(0) ? "(no id)" : r.GetString(0)) : null, stored ? TryReadAudit(r) : null, latest);
        }, cancellationToken).ConfigureAwait(false);
        await snapshot.RollbackAsync(cancellationToken).ConfigureAwait(false);
        return verifier.Report();
    }

    private static ChainEntry ReadLink(DbDataReader r, int at) =>
        new(r.GetInt64(at), r.GetString(at + 1), r.GetString(at + 2), r.GetString(at + 3), r.GetString(at + 4));

    // The marker tells a record's row from none (a link whose record is gone), even for a row whose id was nulled by hand.
    private static readonly string RecordsBesideTheirLinks =
        $"SELECT {string.Join(", ", AuditColumns.Split(',').Select(c => "a." + c.Trim()))},"
        + " CASE WHEN a.id IS NULL AND a.time_ms IS NULL AND a.decision IS NULL THEN 0 ELSE 1 END,"
        + " c.seq, c.record_id, c.prev, c.hash, c.sealed"
        + " FROM audit a"
        + " FULL JOIN (SELECT record_id, max(seq) AS seq FROM audit_chain GROUP BY record_id) latest ON latest.record_id = a.id"
        + " LEFT JOIN audit_chain c ON c.seq = latest.seq";

    /// <summary>A read-only transaction whose reads all see one snapshot of the store.</summary>
    protected virtual async Task<DbTransaction> BeginSnapshotAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);

    private static AuditRecord? TryReadAudit(DbDataReader reader)
    {
        try
        {
            return ReadAudit(reader);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidCastException or FormatException or OverflowException or InvalidOperationException)
        {
            return null;
        }
    }

    private static string CountWhere(string condition) => $"coalesce(sum(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)";

    private static string? Blank(string? text) => string.IsNullOrWhiteSpace(text) ? null : text;

    protected static long ToMs(DateTimeOffset time) => time.ToUnixTimeMilliseconds();

    protected static DateTimeOffset FromMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    protected async Task<int> NonQueryAsync(DbConnection connection, DbTransaction? transaction, string sql, IReadOnlyList<object?> values, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql, values);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    protected async Task<List<T>> RowsAsync<T>(DbConnection connection, DbTransaction? transaction, string sql, IReadOnlyList<object?> values, Func<DbDataReader, T> map, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql, values);
        return await ReadRowsAsync(command, map, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Hands each row to <paramref name="row"/> as it is read, keeping none.</summary>
    private async Task EachRowAsync(DbConnection connection, DbTransaction? transaction, string sql, Action<DbDataReader> row, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql, []);
        await EachRowAsync(command, row, cancellationToken).ConfigureAwait(false);
    }

    private static async Task EachRowAsync(DbCommand command, Action<DbDataReader> row, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            row(reader);
        }
    }

    private static async Task<List<T>> ReadRowsAsync<T>(DbCommand command, Func<DbDataReader, T> map, CancellationToken cancellationToken)
    {
        var rows = new List<T>();
        await EachRowAsync(command, r => rows.Add(map(r)), cancellationToken).ConfigureAwait(false);
        return rows;
    }

    private DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, IReadOnlyList<object?> values)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        Bind(command, values);
        return command;
    }

    private static object?[] AuditValues(AuditRecord r) =>
    [
        r.Id, ToMs(r.Time), r.Tool, r.Transport, r.SessionId, r.Agent, JsonSerializer.Serialize(r.Groups), r.Issuer, r.Subject, r.TokenId,
        r.Connection, r.Sql, r.Parameters, r.Classification, r.Decision.ToString(), r.Rule, r.Reason, r.RowCount, r.DurationMs, r.Error,
        r.Masking, r.Result, r.ClientId, r.DelegatedBy,
    ];

    protected static string? Text(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    // By name only: Enum.Parse also takes "2", which reads as Denied and matches the record's seal, while the listings and
    // counts that compare the stored text would no longer see it as a refusal.
    private static Verdict ParseVerdict(string text) =>
        VerdictNames.Contains(text, StringComparer.Ordinal) ? Enum.Parse<Verdict>(text) : throw new FormatException($"'{text}' is not a decision");

    private static readonly string[] VerdictNames = Enum.GetNames<Verdict>();

    private static AuditRecord ReadAudit(DbDataReader r) => new()
    {
        Id = r.GetString(0),
        Time = FromMs(r.GetInt64(1)),
        Tool = r.GetString(2),
        Transport = r.GetString(3),
        SessionId = Text(r, 4),
        Agent = Text(r, 5),
        Groups = JsonSerializer.Deserialize<string[]>(r.GetString(6)) ?? [],
        Issuer = Text(r, 7),
        Subject = Text(r, 8),
        TokenId = Text(r, 9),
        Connection = Text(r, 10),
        Sql = Text(r, 11),
        Parameters = Text(r, 12),
        Classification = Text(r, 13),
        Decision = ParseVerdict(r.GetString(14)),
        Rule = r.GetString(15),
        Reason = r.GetString(16),
        RowCount = r.IsDBNull(17) ? null : r.GetInt64(17),
        DurationMs = r.GetDouble(18),
        Error = Text(r, 19),
        Masking = Text(r, 20),
        Result = Text(r, 21),
        ClientId = Text(r, 22),
        DelegatedBy = Text(r, 23),
    };
}
