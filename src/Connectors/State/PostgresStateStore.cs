using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Npgsql;

namespace Gatehouse.Connectors.State;

/// <summary>
/// The gateway's state in PostgreSQL, for several gateway instances: the audit log (one hash chain, appended under a
/// transaction-scoped advisory lock so concurrent instances never fork it), access requests, statement approvals and agent
/// switches, in schema <c>gatehouse_state</c>. The switches and grants every call is checked against come from a snapshot kept
/// while the store's version stands (<see cref="StateSnapshots"/>), not from a read of each call's own.
/// </summary>
public sealed class PostgresStateStore : SqlStateStore, IAsyncDisposable
{
    public const string SchemaName = "gatehouse_state";

    // Any fixed key will do: it only has to be the same in every gateway process.
    private const long ChainLock = 0x6761_7465_6175_6469;

    private const int PendingLockClass = 0x6761_7465;

    private static readonly string[] Schema =
    [
        $"CREATE SCHEMA IF NOT EXISTS {SchemaName}",
        """
        CREATE TABLE IF NOT EXISTS audit (
            id text PRIMARY KEY, time_ms bigint NOT NULL, tool text NOT NULL, transport text NOT NULL, session_id text,
            agent text, groups_json text NOT NULL, issuer text, subject text, token_id text, connection text, sql text,
            parameters text, classification text, decision text NOT NULL, rule text NOT NULL, reason text NOT NULL,
            row_count bigint, duration_ms double precision NOT NULL, error text, masking text, result text)
        """,
        // Columns added since the first release, for stores created before them.
        "ALTER TABLE audit ADD COLUMN IF NOT EXISTS client_id text",
        "ALTER TABLE audit ADD COLUMN IF NOT EXISTS delegated_by text",
        "CREATE INDEX IF NOT EXISTS audit_time ON audit (time_ms)",
        "CREATE INDEX IF NOT EXISTS audit_agent_time ON audit (agent, time_ms)",
        "CREATE INDEX IF NOT EXISTS audit_session ON audit (session_id)",
        "CREATE TABLE IF NOT EXISTS audit_chain (seq bigint PRIMARY KEY, record_id text NOT NULL, prev text NOT NULL, hash text NOT NULL, sealed text NOT NULL)",
        "CREATE INDEX IF NOT EXISTS audit_chain_record ON audit_chain (record_id)",
        "CREATE TABLE IF NOT EXISTS audit_checkpoints (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, through_seq bigint NOT NULL, last_hash text NOT NULL, purged bigint NOT NULL, at_ms bigint NOT NULL, signature text NOT NULL)",
        """
        CREATE TABLE IF NOT EXISTS access_requests (
            id text PRIMARY KEY, agent text NOT NULL, subject text NOT NULL, issuer text NOT NULL, connection text NOT NULL,
            tables_json text NOT NULL, access text NOT NULL, reason text NOT NULL, duration_ms bigint NOT NULL, status text NOT NULL,
            created_ms bigint NOT NULL, decided_ms bigint, decided_by text, decision_note text, grant_expires_ms bigint, schemas_json text, unmask text)
        """,
        "CREATE INDEX IF NOT EXISTS access_requests_agent ON access_requests (agent, status)",
        """
        CREATE TABLE IF NOT EXISTS statement_approvals (
            id text PRIMARY KEY, agent text NOT NULL, subject text NOT NULL, issuer text NOT NULL, connection text NOT NULL,
            statement_hash text NOT NULL, parameters_hash text NOT NULL, sql text NOT NULL, parameters text, classification text NOT NULL,
            rule text NOT NULL, reason text NOT NULL, required bigint NOT NULL, status text NOT NULL, created_ms bigint NOT NULL,
            expires_ms bigint NOT NULL, votes_json text NOT NULL, dry_run_rows bigint, kept_result text, kept_until_ms bigint, review text, dry_run_sample text)
        """,
        "CREATE INDEX IF NOT EXISTS statement_approvals_lookup ON statement_approvals (agent, connection, statement_hash, parameters_hash)",
        "CREATE INDEX IF NOT EXISTS statement_approvals_kept ON statement_approvals (kept_until_ms) WHERE kept_result IS NOT NULL",
        "ALTER TABLE statement_approvals ADD COLUMN IF NOT EXISTS delegated_by text",
        "ALTER TABLE access_requests ADD COLUMN IF NOT EXISTS delegated_by text",
        "ALTER TABLE access_requests ADD COLUMN IF NOT EXISTS votes_json text",
        "ALTER TABLE access_requests ADD COLUMN IF NOT EXISTS required bigint",
        "ALTER TABLE access_requests ADD COLUMN IF NOT EXISTS expires_ms bigint",
        // The store holds the line on approvals itself: a gateway of an older version, in a rolling upgrade, approves a request
        // that needs two with one, else, or one past its pending_ttl by the fixed hour. (An UPDATE by hand that writes votes
        // is not stopped; one that lowers required is, and one that leaves out when it was decided where it has an expiry.)
        $$"""
        CREATE OR REPLACE FUNCTION {{SchemaName}}.access_approvals_counted() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
            IF NEW.status = 'Approved' AND OLD.status = 'Pending'
                AND ((greatest(coalesce(OLD.required, 1), coalesce(NEW.required, 1)) > 1
                        AND (SELECT count(*) FROM json_array_elements(coalesce(NEW.votes_json, '[]')::json) v WHERE (v ->> 'Approve')::boolean)
                            < greatest(coalesce(OLD.required, 1), coalesce(NEW.required, 1)))
                    OR coalesce(NEW.decided_ms, OLD.expires_ms) >= OLD.expires_ms) THEN
                RAISE EXCEPTION '{{AccessApprovalsShort}}';
            END IF;
            RETURN NEW;
        END
        $f$
        """,
        // Made only where missing, as the triggers below are (CREATE OR REPLACE TRIGGER needs PostgreSQL 14).
        $$"""
        DO $d$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'access_approvals_counted' AND tgrelid = '{{SchemaName}}.access_requests'::regclass) THEN
                CREATE TRIGGER access_approvals_counted BEFORE UPDATE ON {{SchemaName}}.access_requests
                    FOR EACH ROW EXECUTE FUNCTION {{SchemaName}}.access_approvals_counted();
            END IF;
        END $d$
        """,
        "CREATE TABLE IF NOT EXISTS agents (agent text PRIMARY KEY, disabled bigint NOT NULL, changed_by text NOT NULL, changed_ms bigint NOT NULL)",
        "CREATE TABLE IF NOT EXISTS connection_rotations (connection text PRIMARY KEY, generation bigint NOT NULL, requested_by text NOT NULL, requested_ms bigint NOT NULL)",
        // What every call reads (agent switches, approved requests) changes the version in the same transaction, whoever writes
        // it: this gateway, another instance, or an admin with psql. Instances keep a snapshot while the version stands.
        "CREATE TABLE IF NOT EXISTS state_changes (id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)",
        "INSERT INTO state_changes (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        $$"""
        CREATE OR REPLACE FUNCTION {{SchemaName}}.note_state_change() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
            UPDATE {{SchemaName}}.state_changes SET version = version + 1 WHERE id = 1;
            RETURN NULL;
        END
        $f$
        """,
        .. new[] { "agents", "access_requests" }.Select(table => $$"""
            DO $d$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{{table}}_changed' AND tgrelid = '{{SchemaName}}.{{table}}'::regclass) THEN
                    CREATE TRIGGER {{table}}_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {{SchemaName}}.{{table}}
                        FOR EACH STATEMENT EXECUTE FUNCTION {{SchemaName}}.note_state_change();
                END IF;
            END $d$
            """),
    ];

    // One transaction, so the rows are exactly those of the version read with them.
    private static readonly string[] SnapshotBatch =
    [
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        "SELECT version FROM state_changes WHERE id = 1",
        $"SELECT agent FROM agents WHERE disabled = 1 LIMIT {StateSnapshots.MaxRows + 1}",
        $"SELECT {RequestColumns} FROM access_requests WHERE status = 'Approved' AND grant_expires_ms > $1 LIMIT {StateSnapshots.MaxRows + 1}",
        "COMMIT",
    ];

    private readonly NpgsqlDataSource _source;
    private StateSnapshots? _snapshots;

    private PostgresStateStore(NpgsqlDataSource source) => _source = source;

    /// <summary>Connects with the given credential and creates the schema and tables if they are missing.</summary>
    /// <param name="create">False: a database without the gateway's schema is refused instead of given an empty one.</param>
    public static async Task<PostgresStateStore> OpenAsync(string connectionString, Func<string?> password, CancellationToken cancellationToken, bool create = true)
    {
        NpgsqlSettings.ApplySwitches();
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.SearchPath = SchemaName;
        builder.ConnectionStringBuilder.ApplicationName ??= "gatehouse-audit";
        // The writer's commit is two batches on one connection, opened with BEGIN: multiplexing can do neither.
        builder.ConnectionStringBuilder.Multiplexing = false;
        // Read at each new physical connection, so a rotated password file needs no restart.
        builder.UsePasswordProvider(_ => password() ?? "", (_, _) => ValueTask.FromResult(password() ?? ""));
        var log = new PostgresStateStore(builder.Build());
        try
        {
            await using var connection = await log._source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            var found = await SchemaVersionAsync(connection, null, cancellationToken).ConfigureAwait(false);
            if (found is null && !create)
            {
                throw new MissingStateException(
                    $"no gateway state in database '{connection.Database}' on {connection.Host}",
                    $"it has no schema {SchemaName}, so no gateway has kept its state there. Point gateway.store at the database the gateway uses; `gatehouse serve` creates the state when it first starts.");
            }

            if (found is null || found < SchemaVersion)
            {
                await MigrateAsync(connection, cancellationToken).ConfigureAwait(false);
            }

            log._snapshots = new StateSnapshots(log.ReadVersionAsync, log.ReadSnapshotAsync, TimeProvider.System);
            return log;
        }
        catch
        {
            await log.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    // The schema's version, in its comment once every statement above has run: raise it whenever they change. A store at
    // this version or a later one (every open after the first, the CLI's included, and an older gateway beside a newer one)
    // runs no DDL, since even ADD COLUMN IF NOT EXISTS takes its table's exclusive lock before it looks, and would queue every
    // instance's audit writes behind a long read such as `audit verify`.
    // 2: access requests' votes and required approvals. 3: when an access request expires undecided. 4 and 5: the trigger
    // that refuses an access request approved with fewer approvals than it requires, or too late.
    private const int SchemaVersion = 5;

    private const string SchemaMark = "gatehouse state v";

    private static readonly TimeSpan MigrationLockWait = TimeSpan.FromSeconds(10);

    /// <summary>The schema's version by its comment; null when the schema is missing, 0 when unmarked (a store made before the mark).</summary>
    private static async Task<int?> SchemaVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var read = new NpgsqlCommand(
            $"SELECT CASE WHEN to_regnamespace('{SchemaName}') IS NULL THEN NULL ELSE coalesce(obj_description(to_regnamespace('{SchemaName}'), 'pg_namespace'), '') END",
            connection,
            transaction);
        return await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not string mark ? null
            : mark.StartsWith(SchemaMark, StringComparison.Ordinal) && int.TryParse(mark.AsSpan(SchemaMark.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var version) ? version
            : 0;
    }

    private static async Task MigrateAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // Read committed whatever the server's default: the mark is read again after the lock, and must be the latest.
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);
        // Two instances starting together must not race on CREATE ... IF NOT EXISTS; the second finds the first's mark.
        await using (var lockCommand = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({ChainLock})", connection, transaction))
        {
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (await SchemaVersionAsync(connection, transaction, cancellationToken).ConfigureAwait(false) >= SchemaVersion)
        {
            return;
        }

        // An upgrade waits a bounded time for the tables' locks, rather than have every call queue behind its wait.
        await using (var wait = new NpgsqlCommand($"SET LOCAL lock_timeout = '{(int)MigrationLockWait.TotalMilliseconds}ms'", connection, transaction))
        {
            await wait.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            foreach (var statement in Schema)
            {
                await using var command = new NpgsqlCommand(statement, connection, transaction);
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.LockNotAvailable)
        {
            throw new StateUnavailableException(
                $"upgrade its state schema: its tables stayed in use for {MigrationLockWait.TotalSeconds:0} s (by a long read such as `gatehouse audit verify`?); start again once that ends", e);
        }

        await using (var mark = new NpgsqlCommand($"COMMENT ON SCHEMA {SchemaName} IS '{SchemaMark}{SchemaVersion}'", connection, transaction))
        {
            await mark.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private int _stateReads;

    /// <summary>How many times this handle has read agent switches or grants from the database, as snapshots or per call (for tests).</summary>
    internal int StateReads => _stateReads;

    public override async ValueTask<string?> FindDisabledAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var snapshot = await _snapshots!.GetAsync(DateTimeOffset.UtcNow, cancellationToken).ConfigureAwait(false);
        if (snapshot.Disabled is null)
        {
            Interlocked.Increment(ref _stateReads);
            return await base.FindDisabledAsync(keys, cancellationToken).ConfigureAwait(false);
        }

        return snapshot.FindDisabled(keys);
    }

    public override async ValueTask<IReadOnlyList<Grant>> ActiveGrantsAsync(string agent, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var snapshot = await _snapshots!.GetAsync(now, cancellationToken).ConfigureAwait(false);
        if (!snapshot.Keeps(agent))
        {
            Interlocked.Increment(ref _stateReads);
            return await base.ActiveGrantsAsync(agent, now, cancellationToken).ConfigureAwait(false);
        }

        return snapshot.ActiveGrants(agent, now);
    }

    protected override void StateWritten() => _snapshots?.Invalidate();

    /// <summary>The statement the snapshot poll sends every <see cref="StateSnapshots.PollInterval"/>.</summary>
    internal const string VersionQuery = "SELECT version FROM state_changes WHERE id = 1";

    private async Task<long> ReadVersionAsync(CancellationToken cancellationToken)
    {
        await using var command = _source.CreateCommand(VersionQuery);
        return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    private async Task<StateSnapshot> ReadSnapshotAsync(DateTimeOffset from, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _stateReads);
        await using var connection = await _source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = connection.CreateBatch();
        foreach (var sql in SnapshotBatch)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand(sql));
        }

        batch.BatchCommands[3].Parameters.Add(new NpgsqlParameter { Value = ToMs(from) });
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var version = reader.GetInt64(0);
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var disabled = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            disabled.Add(reader.GetString(0));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var approved = new List<AccessRequest>();
        var unreadable = new HashSet<string>(StringComparer.Ordinal);
        var rows = 0;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows++;
            try
            {
                approved.Add(ReadRequest(reader, from));
            }
            catch (Exception e) when (e is InvalidDataException or JsonException or ArgumentException or FormatException)
            {
                // One damaged row (written around the gateway) fails only its agent's calls, each with the reason, as before.
                unreadable.Add(reader.GetString(1));
            }
        }

        while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
        {
        }

        return new StateSnapshot(
            version,
            from,
            disabled.Count > StateSnapshots.MaxRows ? null : disabled,
            rows > StateSnapshots.MaxRows ? null : approved.GroupBy(r => r.Agent, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal))
        {
            Unreadable = unreadable,
        };
    }

    protected override async Task<DbConnection> OpenAuditConnectionAsync(CancellationToken cancellationToken) =>
        await _source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

    // With SQL rewriting off, Npgsql sends $1..$n to the server as positional parameters.
    protected override void Bind(DbCommand command, IReadOnlyList<object?> values)
    {
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }
    }

    protected override string ChainLockStatement => $"SELECT pg_advisory_xact_lock({ChainLock})";

    protected override System.Data.IsolationLevel StateIsolation => System.Data.IsolationLevel.ReadCommitted;

    // The two-key form, a lock space apart from the chain's one-key lock: the class, then the agent's name hashed.
    protected override string AgentLockStatement => $"SELECT pg_advisory_xact_lock({PendingLockClass}, hashtext($1))";

    // Across the network each statement is a round trip: the writer sends a commit in at most two.
    protected override bool BatchesCommits => true;

    // The writer's commits that need not wait for the disk say so for themselves: approvals, switches and every other commit
    // keep the server's own setting. A synchronous commit flushes the write-ahead log up to itself, asynchronous commits
    // before it included.
    protected override string NoFlushStatement => "SET LOCAL synchronous_commit = off";

    // A commit that must reach the disk first (power_loss, a finished record in it) must not take a DBA's synchronous_commit
    // = off for the database or role: that would return before the record is on disk. Only off is raised, to local (this
    // server's disk); local, on and the remote levels are kept as they are.
    protected override string FlushStatement =>
        "SELECT set_config('synchronous_commit', 'local', true) WHERE current_setting('synchronous_commit') = 'off'";

    protected override string Contains(string haystack, string needle) => $"strpos({haystack}, {needle}) > 0";

    protected override string NowMsSql => "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

    protected override string LockRow => " FOR UPDATE";

    public async ValueTask DisposeAsync()
    {
        if (_snapshots is not null)
        {
            await _snapshots.DisposeAsync().ConfigureAwait(false);
        }

        await CloseSessionsAsync().ConfigureAwait(false);
        await _source.DisposeAsync().ConfigureAwait(false);
    }
}
