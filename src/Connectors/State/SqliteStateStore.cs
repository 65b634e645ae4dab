using Microsoft.Data.Sqlite;

namespace Gatehouse.Connectors.State;

/// <summary>
/// The gateway's own state in an embedded SQLite file (WAL; synchronous=FULL, but for the audit writer, which flushes the log
/// itself): audit records, access requests, statement approvals, agent status; the SQL itself is
/// <see cref="SqlStateStore"/>'s. Several processes (servers and the CLI) on one host may share the file.
/// </summary>
public sealed partial class SqliteStateStore
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS audit (
            id TEXT PRIMARY KEY, time_ms INTEGER NOT NULL, tool TEXT NOT NULL, transport TEXT NOT NULL, session_id TEXT,
            agent TEXT, groups_json TEXT NOT NULL, issuer TEXT, subject TEXT, token_id TEXT, connection TEXT, sql TEXT,
            parameters TEXT, classification TEXT, decision TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL,
            row_count INTEGER, duration_ms REAL NOT NULL, error TEXT, masking TEXT, result TEXT, client_id TEXT, delegated_by TEXT);
        CREATE INDEX IF NOT EXISTS audit_time ON audit(time_ms);
        CREATE INDEX IF NOT EXISTS audit_agent_time ON audit(agent, time_ms);
        CREATE TABLE IF NOT EXISTS access_requests (
            id TEXT PRIMARY KEY, agent TEXT NOT NULL, subject TEXT NOT NULL, issuer TEXT NOT NULL, connection TEXT NOT NULL,
            tables_json TEXT NOT NULL, access TEXT NOT NULL, reason TEXT NOT NULL, duration_ms INTEGER NOT NULL, status TEXT NOT NULL,
            created_ms INTEGER NOT NULL, decided_ms INTEGER, decided_by TEXT, decision_note TEXT, grant_expires_ms INTEGER);
        CREATE INDEX IF NOT EXISTS access_requests_agent ON access_requests(agent, status);
        CREATE TABLE IF NOT EXISTS statement_approvals (
            id TEXT PRIMARY KEY, agent TEXT NOT NULL, subject TEXT NOT NULL, issuer TEXT NOT NULL, connection TEXT NOT NULL,
            statement_hash TEXT NOT NULL, parameters_hash TEXT NOT NULL, sql TEXT NOT NULL, parameters TEXT, classification TEXT NOT NULL,
            rule TEXT NOT NULL, reason TEXT NOT NULL, required INTEGER NOT NULL, status TEXT NOT NULL, created_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL, votes_json TEXT NOT NULL, dry_run_rows INTEGER, kept_result TEXT, kept_until_ms INTEGER, review TEXT, dry_run_sample TEXT);
        CREATE INDEX IF NOT EXISTS statement_approvals_lookup ON statement_approvals(agent, connection, statement_hash, parameters_hash);
        CREATE INDEX IF NOT EXISTS statement_approvals_kept ON statement_approvals(kept_until_ms) WHERE kept_result IS NOT NULL;
        CREATE TABLE IF NOT EXISTS audit_chain (
            seq INTEGER PRIMARY KEY, record_id TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, sealed TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS audit_checkpoints (
            id INTEGER PRIMARY KEY, through_seq INTEGER NOT NULL, last_hash TEXT NOT NULL, purged INTEGER NOT NULL, at_ms INTEGER NOT NULL, signature TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS agents (
            agent TEXT PRIMARY KEY, disabled INTEGER NOT NULL, changed_by TEXT NOT NULL, changed_ms INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS connection_rotations (
            connection TEXT PRIMARY KEY, generation INTEGER NOT NULL, requested_by TEXT NOT NULL, requested_ms INTEGER NOT NULL);
        """;

    private readonly string _connectionString;

    private SqliteStateStore(string connectionString) => _connectionString = connectionString;

    /// <summary>Opens (creating if needed) the state file and its schema.</summary>
    public static async Task<SqliteStateStore> OpenAsync(string path, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        if (!OperatingSystem.IsWindows())
        {
            // The log holds SQL, parameters, captured results and kept approval results: readable by the gateway's user only.
            // SQLite gives the -wal and -shm files it creates beside it the same mode. A file made before (by an older
            // version, with the umask's mode) loses what others could read, where this user may change its mode.
            if (!File.Exists(path))
            {
                new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }).Dispose();
            }

            foreach (var file in new[] { path, path + "-wal", path + "-shm" }.Where(File.Exists))
            {
                OwnerOnly(file);
            }
        }

        var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true, DefaultTimeout = 30 };
        var store = new SqliteStateStore(builder.ToString());
        await using var connection = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode=WAL;" + Schema;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await store.MigrateAsync(connection, cancellationToken).ConfigureAwait(false);
        return store;
    }

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static void OwnerOnly(string file)
    {
        const UnixFileMode Others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        try
        {
            var mode = File.GetUnixFileMode(file);
            if ((mode & Others) != 0)
            {
                File.SetUnixFileMode(file, mode & ~Others);
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            // Another user's file: its mode is theirs to set; the store still opens as before.
        }
    }

    // Columns added after a store may already exist; each is added once, idempotently.
    private static readonly (string Table, string Column, string Type)[] AddedColumns = [("audit", "masking", "TEXT"), ("statement_approvals", "review", "TEXT"), ("access_requests", "schemas_json", "TEXT"), ("access_requests", "unmask", "TEXT"), ("statement_approvals", "dry_run_sample", "TEXT"), ("audit", "result", "TEXT"), ("audit", "client_id", "TEXT"), ("audit", "delegated_by", "TEXT"), ("statement_approvals", "delegated_by", "TEXT"), ("access_requests", "delegated_by", "TEXT"), ("access_requests", "votes_json", "TEXT"), ("access_requests", "required", "INTEGER"), ("access_requests", "expires_ms", "INTEGER")];

    // In one write transaction, so two processes starting together on an older store do not both add a column (the second
    // would fail to start with "duplicate column name").
    private async Task MigrateAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        // Microsoft.Data.Sqlite begins it IMMEDIATE: the write lock is held before what is there is read.
        await using var transaction = connection.BeginTransaction(deferred: false);

        foreach (var (table, column, type) in AddedColumns)
        {
            await using var columns = connection.CreateCommand();
            columns.Transaction = transaction;
            columns.CommandText = $"SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'";
            if ((long)(await columns.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! == 0)
            {
                await using var alter = connection.CreateCommand();
                alter.Transaction = transaction;
                alter.CommandText = $"ALTER TABLE {table} ADD COLUMN {column} {type}";
                await alter.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        // The store holds the line on approvals itself: a gateway of an older version approves a request that needs two with
        // one, else, or one past its pending_ttl by the fixed hour. (An UPDATE by hand that writes votes is not stopped; one
        // that lowers required is, and one that leaves out when it was decided where it has an expiry.) A changed trigger
        // takes a new name, the old one dropped: IF NOT EXISTS never replaces one, and a trigger made anew at every open
        // would change the schema each time.
        await using (var trigger = connection.CreateCommand())
        {
            trigger.Transaction = transaction;
            trigger.CommandText = $"""
                DROP TRIGGER IF EXISTS access_approvals_counted;
                CREATE TRIGGER IF NOT EXISTS access_approvals_counted_v2 BEFORE UPDATE OF status ON access_requests
                WHEN NEW.status = 'Approved' AND OLD.status = 'Pending'
                    AND ((max(coalesce(OLD.required, 1), coalesce(NEW.required, 1)) > 1
                            AND (SELECT count(*) FROM json_each(coalesce(NEW.votes_json, '[]')) WHERE json_extract(value, '$.Approve') = 1)
                                < max(coalesce(OLD.required, 1), coalesce(NEW.required, 1)))
                        OR coalesce(NEW.decided_ms, OLD.expires_ms) >= OLD.expires_ms)
                BEGIN SELECT RAISE(ABORT, '{AccessApprovalsShort}'); END;
                """;
            await trigger.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    // In WAL mode, NORMAL syncs at checkpoints only: a commit survives the process, not a power cut. FULL syncs the log at
    // each commit, and with it every commit before.
    protected override string FlushSetting(bool flush) => flush ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";

    internal async Task<SqliteConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = SqliteBusyWait.TryInstall(connection) ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;";
            await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
