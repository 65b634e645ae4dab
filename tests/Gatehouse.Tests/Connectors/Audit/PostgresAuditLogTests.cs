using System.Collections.Concurrent;
using System.Diagnostics;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;
using Npgsql;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>The audit contract against the PostgreSQL store, each test in a database of its own.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresAuditLogTests(PostgresFixture pg) : AuditLogContract, IAsyncLifetime
{
    private readonly List<PostgresStateStore> _opened = [];
    private string _connectionString = "";

    public async Task InitializeAsync() => _connectionString = await pg.CreateDatabaseAsync("audit");

    public async Task DisposeAsync()
    {
        foreach (var log in _opened)
        {
            await log.DisposeAsync();
        }
    }

    protected override async Task<IAuditLog> OpenAsync(bool again = false)
    {
        var log = await PostgresStateStore.OpenAsync(_connectionString, () => null, CancellationToken.None);
        _opened.Add(log);
        return log;
    }

    protected override async Task TamperAsync(string sql) =>
        await ExecuteAsync(sql.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private async Task ExecuteAsync(params string[] statements)
    {
        var builder = new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        foreach (var statement in statements)
        {
            await using var command = new NpgsqlCommand(statement, connection);
            await command.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task A_finished_record_waits_for_the_disk_even_where_the_database_turns_synchronous_commit_off()
    {
        var database = new NpgsqlConnectionStringBuilder(_connectionString).Database;
        await ExecuteAsync($"ALTER DATABASE \"{database}\" SET synchronous_commit = off");
        var log = await OpenAsync();
        // What each commit that seals a record ran with, seen from inside it.
        await ExecuteAsync(
            "CREATE TABLE commit_settings (setting text)",
            "CREATE FUNCTION note_commit_setting() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO commit_settings VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$",
            "CREATE TRIGGER note_commit_setting AFTER INSERT ON audit_chain FOR EACH ROW EXECUTE FUNCTION note_commit_setting()");

        await WriteAsync(log, Record("flushed", Verdict.Allowed, DateTimeOffset.UtcNow));

        var builder = new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_setting('synchronous_commit'), (SELECT string_agg(setting, ',') FROM commit_settings)", connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(("off", "local"), (reader.GetString(0), reader.GetString(1)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_commit_whose_reply_is_lost_is_found_stored_so_its_call_neither_fails_nor_links_twice(bool finished)
    {
        await using var proxy = CommitReplyDropper.Start(_connectionString);
        var log = await PostgresStateStore.OpenAsync(proxy.ConnectionString, () => null, CancellationToken.None);
        _opened.Add(log);
        var record = Record("lost-reply", Verdict.Started, DateTimeOffset.UtcNow);
        if (finished)
        {
            await log.BeginAsync(record, CancellationToken.None);
        }

        proxy.LoseNextCommitReply();
        if (finished)
        {
            await log.CompleteAsync(record with { Decision = Verdict.Allowed }, CancellationToken.None);
        }
        else
        {
            await log.BeginAsync(record, CancellationToken.None);
        }

        Assert.Equal(1, proxy.RepliesLost);
        Assert.Equal(finished ? Verdict.Allowed : Verdict.Started, (await log.GetAsync(record.Id, CancellationToken.None))!.Decision);
        var builder = new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var links = new NpgsqlCommand("SELECT count(*) FROM audit_chain WHERE record_id = $1", connection) { Parameters = { new() { Value = record.Id } } };
        Assert.Equal(finished ? 1L : 0L, await links.ExecuteScalarAsync());
        await AssertChainIntactAsync(log, finished ? 1 : 0);
    }

    // Each statement sent on its own is a round trip: a call's two writes took nine, seven statements (two of them changing
    // the session's synchronous_commit) and two commits. Its started record now goes in one, and its finished record, sealed
    // into the chain, in two: one traced command each. The snapshot poll reads the store's version every 100 ms beside them;
    // its reads are not the call's, and with a pool (as the gateway has) it opens no connection once it has one.
    [Fact]
    public async Task A_calls_two_writes_reach_the_store_in_three_round_trips()
    {
        var pooled = new NpgsqlConnectionStringBuilder(_connectionString) { Pooling = true };
        var measuring = false;
        var polled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var roundTrips = new ConcurrentQueue<string>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = activity =>
            {
                if (!Equals(activity.GetTagItem("db.namespace"), pooled.Database))
                {
                    return;
                }

                if (Equals(activity.GetTagItem("db.query.text"), PostgresStateStore.VersionQuery))
                {
                    polled.TrySetResult();
                }
                else if (Volatile.Read(ref measuring))
                {
                    roundTrips.Enqueue(activity.DisplayName);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        var log = await PostgresStateStore.OpenAsync(pooled.ConnectionString, () => null, CancellationToken.None);
        _opened.Add(log);
        await WriteAsync(log, Record("warm", Verdict.Allowed, DateTimeOffset.UtcNow));
        await polled.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Volatile.Write(ref measuring, true);

        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));

        Assert.True(roundTrips.Count == 3, $"{roundTrips.Count} round trips: {string.Join(", ", roundTrips)}");
        await AssertChainIntactAsync(log, sealedRecords: 2);
    }

    // Under power_loss (the default) a started record's commit need not wait for the disk, and a finished record's must; each
    // transaction says so itself, so a trigger sees the setting each commit ran under.
    [Fact]
    public async Task A_started_record_commits_without_waiting_for_the_disk_and_its_finished_record_waits()
    {
        var log = await OpenAsync();
        await ProbeWritesAsync("current_setting('synchronous_commit')");

        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));

        var waits = (await QueryAsync("SHOW synchronous_commit")).Single();
        Assert.NotEqual("off", waits);
        Assert.Equal(["Started: off", $"Allowed: {waits}"], await QueryAsync("SELECT seen FROM probed ORDER BY n"));
    }

    // The chain head must come from a snapshot taken once the chain lock is held: a repeatable read transaction would keep
    // the one its first insert took, and miss a link another instance committed meanwhile.
    [Fact]
    public async Task The_writer_commits_read_committed_where_the_database_defaults_to_repeatable_read()
    {
        var database = new NpgsqlConnectionStringBuilder(_connectionString).Database;
        await ExecuteAsync($"ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'repeatable read'");
        var log = await OpenAsync();
        await ProbeWritesAsync("current_setting('transaction_isolation')");
        Assert.Equal(["repeatable read"], await QueryAsync("SHOW transaction_isolation"));

        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));

        Assert.Equal(["Started: read committed", "Allowed: read committed"], await QueryAsync("SELECT seen FROM probed ORDER BY n"));
    }

    // A trigger that notes, for each record written, its decision and what the expression reads inside the writer's transaction.
    private Task ProbeWritesAsync(string expression) => ExecuteAsync(
        "CREATE TABLE probed (n bigserial, seen text NOT NULL)",
        $"""
        CREATE FUNCTION probe_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO probed (seen) VALUES (new.decision || ': ' || {expression});
            RETURN new;
        END $$
        """,
        "CREATE TRIGGER probe_write AFTER INSERT OR UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION probe_write()");

    private async Task<List<string>> QueryAsync(string sql)
    {
        var builder = new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }
}


/// <summary>The state contract against PostgreSQL, each test in a database of its own.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresStateStoreTests(PostgresFixture pg) : StateStoreContract, IAsyncLifetime
{
    private readonly List<PostgresStateStore> _opened = [];
    private string _connectionString = "";

    public async Task InitializeAsync() => _connectionString = await pg.CreateDatabaseAsync("state");

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            await store.DisposeAsync();
        }
    }

    protected override async Task<SqlStateStore> OpenAsync(bool again = false)
    {
        var store = await PostgresStateStore.OpenAsync(_connectionString, () => null, CancellationToken.None);
        _opened.Add(store);
        return store;
    }

    protected override TimeSpan SeenElsewhereWithin => TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(string sql)
    {
        // As an admin would with psql: the store's tables, outside the gateway.
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>A transaction of an admin's, outside the gateway, reading the audit table until disposed: what `audit verify` holds.</summary>
    private async Task<NpgsqlConnection> ReadAuditInTransactionAsync()
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName }.ConnectionString);
        await connection.OpenAsync();
        foreach (var sql in new[] { "BEGIN", "SELECT count(*) FROM audit" })
        {
            await using var command = new NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }

        return connection;
    }

    private async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    private async Task<string?> SchemaCommentAsync() =>
        await ScalarAsync($"SELECT obj_description(to_regnamespace('{PostgresStateStore.SchemaName}'), 'pg_namespace')") as string;

    [Fact]
    public async Task Opening_a_store_already_there_changes_no_table_so_it_does_not_wait_behind_a_long_read()
    {
        // ADD COLUMN IF NOT EXISTS takes the table's exclusive lock before it looks: run at every open (an admin's `agents
        // disable` included), it queued behind a long read, and every instance's audit writes queued behind it.
        var first = await OpenAsync();
        await using var reading = await ReadAuditInTransactionAsync();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await using var again = await PostgresStateStore.OpenAsync(_connectionString, () => null, timeout.Token, create: false);
        await again.SetDisabledAsync("bad-agent", true, "alice", timeout.Token);
        Assert.Equal("bad-agent", await first.FindDisabledAsync(["bad-agent"], CancellationToken.None));
    }

    [Fact]
    public async Task An_older_gateway_opening_a_store_a_newer_one_upgraded_changes_no_table()
    {
        // Two versions side by side during a rolling upgrade, or an older CLI: neither undoes nor redoes the other's mark.
        await OpenAsync();
        await ExecuteAsync("COMMENT ON SCHEMA gatehouse_state IS 'gatehouse state v999'");
        await using var reading = await ReadAuditInTransactionAsync();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await using var older = await PostgresStateStore.OpenAsync(_connectionString, () => null, timeout.Token);
        Assert.Equal("gatehouse state v999", await SchemaCommentAsync());
    }

    [Fact]
    public async Task A_store_made_before_a_change_to_its_tables_is_upgraded_and_marked_once()
    {
        await OpenAsync();
        var mark = await SchemaCommentAsync();
        Assert.StartsWith("gatehouse state ", mark);
        await ExecuteAsync("COMMENT ON SCHEMA gatehouse_state IS NULL");
        await ExecuteAsync("ALTER TABLE audit DROP COLUMN delegated_by");

        await OpenAsync();
        Assert.Equal(mark, await SchemaCommentAsync());
        Assert.Equal(1L, await ScalarAsync("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'gatehouse_state' AND table_name = 'audit' AND column_name = 'delegated_by'"));
    }

    [Fact]
    public async Task A_store_marked_at_the_first_version_gets_the_columns_access_requests_now_need()
    {
        // Marked v1, it ran no DDL at all: the columns added since were missing, and every read of a request failed.
        var before = (PostgresStateStore)await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        AccessRequest Request(string id) => new(id, "analyst", "analyst", "dev", "shop", [], AccessLevel.Read, "report", TimeSpan.FromHours(1), AccessRequestStatus.Pending, now);
        await before.CreateAsync(Request("req_decided"), 20, CancellationToken.None);
        await before.DecideAsync("req_decided", new ApprovalVote("alice", true, now, "ok"), 1, TimeSpan.FromDays(1), now, CancellationToken.None);
        await before.CreateAsync(Request("req_revoked"), 20, CancellationToken.None);
        await before.DecideAsync("req_revoked", new ApprovalVote("alice", true, now, "for the report"), 1, TimeSpan.FromDays(1), now, CancellationToken.None);
        await before.RevokeAsync("req_revoked", "bob", now, CancellationToken.None);
        await before.CreateAsync(Request("req_waiting") with { CreatedAt = now.AddMinutes(-30) }, 20, CancellationToken.None);
        await ExecuteAsync("ALTER TABLE access_requests DROP COLUMN votes_json");
        await ExecuteAsync("ALTER TABLE access_requests DROP COLUMN required");
        await ExecuteAsync("ALTER TABLE access_requests DROP COLUMN expires_ms");
        await ExecuteAsync("COMMENT ON SCHEMA gatehouse_state IS 'gatehouse state v1'");

        var store = (PostgresStateStore)await OpenAsync();
        Assert.Equal("gatehouse state v5", await SchemaCommentAsync());
        await store.CreateAsync(Request("req_upgraded") with { Required = 2 }, 20, CancellationToken.None);
        Assert.Equal(2, (await store.GetAsync("req_upgraded", now, CancellationToken.None))!.Required);

        // A request decided before votes were kept shows its one decision as its one vote.
        var decided = (await store.GetAsync("req_decided", now, CancellationToken.None))!;
        Assert.Equal((AccessRequestStatus.Approved, 1, 1), (decided.Status, decided.Approvals, decided.Required));
        Assert.Equal(("alice", "ok"), (decided.Votes[0].Approver, decided.Votes[0].Note));
        var revoked = (await store.GetAsync("req_revoked", now, CancellationToken.None))!;
        Assert.Equal((AccessRequestStatus.Revoked, "for the report; revoked by bob"), (revoked.Status, revoked.DecisionNote));
        Assert.Equal(("alice", true, "for the report"), (revoked.Votes[0].Approver, revoked.Votes[0].Approve, revoked.Votes[0].Note));

        // One filed before its time to wait was kept waits an hour, in the store's reads as in its counts.
        Assert.Equal(AccessRequestStatus.Pending, (await store.GetAsync("req_waiting", now, CancellationToken.None))!.Status);
        Assert.Equal(2, await store.CountPendingAsync("analyst", now, CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Expired, (await store.GetAsync("req_waiting", now.AddMinutes(31), CancellationToken.None))!.Status);
        Assert.Equal(1, await store.CountPendingAsync("analyst", now.AddMinutes(31), CancellationToken.None));
    }

    [Fact]
    public async Task An_upgrade_whose_tables_stay_in_use_fails_saying_why_instead_of_queueing_every_call_behind_it()
    {
        await OpenAsync();
        await ExecuteAsync("COMMENT ON SCHEMA gatehouse_state IS NULL");
        await using var reading = await ReadAuditInTransactionAsync();

        var e = await Assert.ThrowsAsync<StateUnavailableException>(() => PostgresStateStore.OpenAsync(_connectionString, () => null, CancellationToken.None));
        Assert.Contains("upgrade its state schema", e.Message);
        Assert.Contains("audit verify", e.Message);
    }

    [Fact]
    public async Task A_server_default_of_repeatable_read_does_not_let_filings_at_once_pass_the_cap_or_file_one_statement_twice()
    {
        // Under REPEATABLE READ a statement after the per-agent lock would read the snapshot taken before the lock was granted,
        // missing what its previous holder filed: the store's write transactions begin READ COMMITTED, whatever the default.
        var database = new NpgsqlConnectionStringBuilder(_connectionString).Database;
        await pg.AdminScalarAsync($"ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'repeatable read'");

        await Filings_at_the_same_moment_cannot_together_pass_the_cap_on_waiting_requests();
        await The_same_statement_filed_at_the_same_moment_is_one_request_that_every_filing_waits_on();
    }

    [Fact]
    public async Task Calls_are_checked_against_a_kept_snapshot_not_a_read_of_their_own()
    {
        var store = (PostgresStateStore)await OpenAsync();
        await store.SetDisabledAsync("agent-3", true, "alice", CancellationToken.None);
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(i % 5 == 3, await store.IsDisabledAsync($"agent-{i % 5}", CancellationToken.None));
            Assert.Empty(await store.ActiveGrantsAsync($"agent-{i % 5}", DateTimeOffset.UtcNow, CancellationToken.None));
        }

        // One read after the write; a few more only if this machine stalled the poll past a snapshot's age.
        Assert.InRange(store.StateReads, 1, 10);
    }

    [Fact]
    public async Task Reads_of_a_store_that_stops_answering_fail_as_a_store_failure_and_answer_again_once_it_is_back()
    {
        var store = await OpenAsync();
        Assert.Null(await store.FindDisabledAsync(["analyst"], CancellationToken.None));
        var database = new NpgsqlConnectionStringBuilder(_connectionString).Database;
        await pg.AdminScalarAsync($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false");
        try
        {
            await pg.AdminScalarAsync($"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}'");

            // The kept snapshot serves for its age (half a second); then every read goes to the store. What fails must be
            // what the pipeline reports as the state store not answering (state.unavailable), not an internal error.
            var clock = Stopwatch.StartNew();
            Exception? switches = null;
            while (switches is null)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "agent switches were still read 5 s after the store stopped taking connections");
                switches = await Record.ExceptionAsync(() => store.FindDisabledAsync(["analyst"], CancellationToken.None).AsTask());
                await Task.Delay(20);
            }

            Assert.True(StateUnavailableException.IsStoreFailure(switches), switches.ToString());
            var grants = await Record.ExceptionAsync(() => store.ActiveGrantsAsync("analyst", DateTimeOffset.UtcNow, CancellationToken.None).AsTask());
            Assert.True(grants is not null && StateUnavailableException.IsStoreFailure(grants), grants?.ToString() ?? "time-boxed grants were read from a store taking no connections");
        }
        finally
        {
            await pg.AdminScalarAsync($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true");
        }

        // No restart: the same handle answers again.
        var back = Stopwatch.StartNew();
        while (await Record.ExceptionAsync(() => store.FindDisabledAsync(["analyst"], CancellationToken.None).AsTask()) is { } failure)
        {
            Assert.True(back.Elapsed < TimeSpan.FromSeconds(5), $"the store still failed 5 s after it took connections again: {failure.Message}");
            await Task.Delay(50);
        }

        Assert.Empty(await store.ActiveGrantsAsync("analyst", DateTimeOffset.UtcNow, CancellationToken.None));
    }

    [Fact]
    public async Task A_switch_changed_in_the_database_by_hand_is_enforced_within_a_second()
    {
        var store = await OpenAsync();
        Assert.False(await store.IsDisabledAsync("analyst", CancellationToken.None));
        await ExecuteAsync("INSERT INTO agents (agent, disabled, changed_by, changed_ms) VALUES ('analyst', 1, 'psql', 0)");
        var clock = Stopwatch.StartNew();
        while (!await store.IsDisabledAsync("analyst", CancellationToken.None))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), "an agent disabled with psql was still let through after a second");
            await Task.Delay(10);
        }

        await ExecuteAsync("TRUNCATE agents");
        clock.Restart();
        while (await store.IsDisabledAsync("analyst", CancellationToken.None))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), "a truncated switch table still refused the agent after a second");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task Past_the_row_cap_every_call_reads_the_switches_itself()
    {
        var store = await OpenAsync();
        await ExecuteAsync($"INSERT INTO agents SELECT 'token:' || g, 1, 'alice', 0 FROM generate_series(1, {StateSnapshots.MaxRows + 1}) g");
        Assert.True(await store.IsDisabledAsync($"token:{StateSnapshots.MaxRows + 1}", CancellationToken.None));
        Assert.False(await store.IsDisabledAsync("analyst", CancellationToken.None));
        // Nothing is kept, so a key disabled by hand is refused on the very next call, without waiting for the poll.
        await ExecuteAsync("INSERT INTO agents VALUES ('analyst', 1, 'psql', 0)");
        Assert.True(await store.IsDisabledAsync("analyst", CancellationToken.None));
    }

    private const string ApprovedColumns =
        "INSERT INTO access_requests (id, agent, subject, issuer, connection, tables_json, access, reason, duration_ms, status, created_ms, decided_ms, decided_by, grant_expires_ms)";

    [Fact]
    public async Task Past_the_row_cap_every_call_reads_the_grants_itself()
    {
        var store = await OpenAsync();
        var expires = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds();
        await ExecuteAsync($"{ApprovedColumns} SELECT 'req_' || g, 'agent-' || g, 's', 'dev', 'shop', '[\"public.orders\"]', 'read', 'r', 3600000, 'Approved', 0, 0, 'alice', {expires} FROM generate_series(1, {StateSnapshots.MaxRows + 1}) g");
        Assert.Single(await store.ActiveGrantsAsync($"agent-{StateSnapshots.MaxRows + 1}", DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.Empty(await store.ActiveGrantsAsync("analyst", DateTimeOffset.UtcNow, CancellationToken.None));
        await ExecuteAsync($"{ApprovedColumns} VALUES ('req_analyst', 'analyst', 's', 'dev', 'shop', '[\"public.orders\"]', 'read', 'r', 3600000, 'Approved', 0, 0, 'alice', {expires})");
        Assert.Single(await store.ActiveGrantsAsync("analyst", DateTimeOffset.UtcNow, CancellationToken.None));
    }

    [Fact]
    public async Task A_damaged_approved_request_fails_only_its_own_agents_calls()
    {
        var store = await OpenAsync();
        var expires = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds();
        await ExecuteAsync($"{ApprovedColumns} VALUES ('req_bad', 'broken', 's', 'dev', 'shop', '[\"public..orders\"]', 'read', 'r', 3600000, 'Approved', 0, 0, 'psql', {expires})");
        await ExecuteAsync($"{ApprovedColumns} VALUES ('req_ok', 'analyst', 's', 'dev', 'shop', '[\"public.orders\"]', 'read', 'r', 3600000, 'Approved', 0, 0, 'alice', {expires})");
        await store.SetDisabledAsync("ops-bot", true, "alice", CancellationToken.None);

        Assert.True(await store.IsDisabledAsync("ops-bot", CancellationToken.None));
        Assert.Single(await store.ActiveGrantsAsync("analyst", DateTimeOffset.UtcNow, CancellationToken.None));
        var e = await Assert.ThrowsAsync<InvalidDataException>(async () => await store.ActiveGrantsAsync("broken", DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.Contains("public..orders", e.Message);
    }
}
