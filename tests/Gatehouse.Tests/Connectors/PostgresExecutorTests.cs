using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Connectors;

[Collection(PostgresCollection.Name)]
public sealed class PostgresExecutorTests(PostgresFixture pg) : IAsyncLifetime
{
    private static readonly AgentIdentity Analyst = new("analyst", [], "dev", "analyst", null, DateTimeOffset.MaxValue);
    private PostgresTargets _targets = null!;

    public Task InitializeAsync()
    {
        var connections = new Dictionary<string, ConnectionConfig>
        {
            ["shop"] = new("shop", pg.GatewayConnectionString, new SecretSource(null, WritePassword())),
        };
        _targets = new PostgresTargets(connections);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _targets.DisposeAsync();

    private string WritePassword()
    {
        var path = Path.Combine(TestDirectory.Create("pw"), "password");
        File.WriteAllText(path, pg.GatewayPassword + "\n");
        return path;
    }

    private Task<QueryResult> Run(string sql, IReadOnlyList<string?>? parameters = null, bool readOnly = true, int maxRows = 100, int maxBytes = 1 << 20, TimeSpan? timeout = null) =>
        new PostgresExecutor(_targets).ExecuteAsync(
            new ExecutionRequest("shop", sql, parameters ?? [], readOnly, Cursor: readOnly, maxRows, maxBytes, timeout ?? TimeSpan.FromSeconds(10), Analyst, "aud_test"),
            beforeCommit: null,
            CancellationToken.None).AsTask();

    // Targets of their own, their connection string with these settings added.
    private PostgresTargets TargetsWith(string settings) =>
        new(new Dictionary<string, ConnectionConfig> { ["shop"] = new("shop", pg.GatewayConnectionString + settings, new SecretSource(null, WritePassword())) });

    private static Task<QueryResult> Read(PostgresTargets targets, string sql) =>
        new PostgresExecutor(targets).ExecuteAsync(
            new ExecutionRequest("shop", sql, [], ReadOnly: true, Cursor: true, 100, 1 << 20, TimeSpan.FromSeconds(10), Analyst, "aud_test"), null, CancellationToken.None).AsTask();

    [Fact]
    public async Task Calls_one_after_another_run_on_one_backend_even_after_the_pool_has_grown()
    {
        await using var targets = TargetsWith("");
        const string Pid = "select pg_backend_pid() as pid from pg_sleep(0.2)";
        var atOnce = await Task.WhenAll(Read(targets, Pid), Read(targets, Pid));
        Assert.NotEqual(atOnce[0].Rows[0][0], atOnce[1].Rows[0][0]);

        // Npgsql's pool would lend its two idle connections in turn; the one given back last serves the next call.
        var pids = new List<object?>();
        for (var i = 0; i < 6; i++)
        {
            pids.Add((await Read(targets, "select pg_backend_pid() as pid")).Rows[0][0]);
        }

        var kept = Assert.Single(pids.Distinct());

        // Draining the pool (a password rotation) closes the kept connection too: the next call logs in afresh.
        targets.Drain("shop");
        Assert.DoesNotContain((await Read(targets, "select pg_backend_pid() as pid")).Rows[0][0], atOnce.Select(r => r.Rows[0][0]).Append(kept));
    }

    [Fact]
    public async Task The_gateways_catalog_reads_give_the_kept_connection_back_for_the_next_call()
    {
        await using var targets = TargetsWith("");
        const string Pid = "select pg_backend_pid() as pid from pg_sleep(0.2)";
        await Task.WhenAll(Read(targets, Pid), Read(targets, Pid));

        // Were each catalog read (describe_schema, policy check, the catalog poll several times a second) to send the kept
        // connection back to the pool, the pool would lend its two idle ones in turn, and calls would alternate again.
        var catalog = new PostgresCatalog(targets);
        var pids = new List<object?>();
        for (var i = 0; i < 4; i++)
        {
            pids.Add((await Read(targets, "select pg_backend_pid() as pid")).Rows[0][0]);
            await catalog.DescribeAsync("shop", "public", "customers", CancellationToken.None);
        }

        Assert.Single(pids.Distinct());
    }

    [Fact]
    public async Task A_connection_kept_for_calls_in_sequence_still_ends_at_its_lifetime()
    {
        // A one-second lifetime: the kept connection must go back to the pool, which closes a connection past its lifetime,
        // however busy it is kept.
        await using var targets = TargetsWith(";Connection Lifetime=1");
        var pids = new HashSet<object?>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(3))
        {
            pids.Add((await Read(targets, "select pg_backend_pid() as pid")).Rows[0][0]);
        }

        Assert.True(pids.Count >= 2, $"one backend served calls for 3 s past a 1 s connection lifetime: {string.Join(", ", pids)}");
    }

    [Fact]
    public async Task A_kept_connection_left_idle_goes_back_to_the_pool_which_closes_it()
    {
        // Kept past its due time by the last call before a quiet spell, it must still reach the pool, which closes a connection
        // idle longer than its idle lifetime (here a second): kept out of the pool, it stayed open for good.
        await using var targets = TargetsWith(";Connection Lifetime=1;Connection Idle Lifetime=1;Connection Pruning Interval=1");
        var backend = (await Read(targets, "select pg_backend_pid() as pid")).Rows[0][0];
        await WaitForBackendGoneAsync(backend);
        Assert.NotEqual(backend, (await Read(targets, "select pg_backend_pid() as pid")).Rows[0][0]);
    }

    [Fact]
    public async Task Values_past_what_the_gateway_can_render_say_so_instead_of_failing_the_call()
    {
        var result = await Run("select 1e30::numeric as big, 'NaN'::numeric as nan, '200000-01-01'::timestamp as far, '200000-01-01'::date as day, 12.5::numeric as fine");
        static string Note(string type) => $"(a {type} value Gatehouse cannot render; cast it to text to read it)";
        Assert.Equal([Note("numeric"), Note("numeric"), Note("timestamp without time zone"), Note("date"), 12.5m], result.Rows[0]);
    }

    [Fact]
    public async Task Infinite_dates_and_timestamps_read_as_infinity_and_the_extreme_real_dates_as_themselves()
    {
        var result = await Run("""
            select 'infinity'::date, '-infinity'::date, 'infinity'::timestamp, '-infinity'::timestamptz,
                   '9999-12-31'::date, '0001-01-01 00:00'::timestamp, '2025-01-14 09:12:00.123456+00'::timestamptz,
                   '2025-01-14 09:12'::timestamp, '0044-03-15 BC'::date
            """);

        // Npgsql's conversion read the first four as 9999-12-31 and 0001-01-01: dates an agent would then look for.
        Assert.Equal(
            ["infinity", "-infinity", "infinity", "-infinity", "9999-12-31", "0001-01-01T00:00:00", "2025-01-14T09:12:00.1234560Z", "2025-01-14T09:12:00",
                "(a date value Gatehouse cannot render; cast it to text to read it)"],
            result.Rows[0]);
    }

    [Fact]
    public async Task An_array_or_range_holding_infinity_says_it_cannot_be_rendered_rather_than_showing_a_real_date()
    {
        var result = await Run("select array['infinity'::date, '2020-01-01'], tsrange('2020-01-01', 'infinity'), array['2020-01-01'::date]");

        Assert.Equal("(a date[] value Gatehouse cannot render; cast it to text to read it)", result.Rows[0][0]);
        Assert.Equal("(a tsrange value Gatehouse cannot render; cast it to text to read it)", result.Rows[0][1]);
        Assert.Equal(["2020-01-01"], Assert.IsType<List<object?>>(result.Rows[0][2]));
    }

    [Fact]
    public async Task Sampling_a_table_for_classification_passes_over_values_it_cannot_render()
    {
        await pg.AdminScalarAsync("create table public.sampled_extremes (id int, due date, amount numeric)");
        await pg.AdminScalarAsync("insert into public.sampled_extremes values (1, 'infinity', 'NaN'), (2, '2024-05-01', 12.5)");
        await pg.AdminScalarAsync($"grant select on public.sampled_extremes to {pg.GatewayRole}");

        // Read with Npgsql's conversion as it stood, NaN threw out of the sampler and failed `gatehouse classify` for the table.
        var sample = await new PostgresSampler(_targets).SampleAsync("shop", new RelationName("public", "sampled_extremes"), 10, CancellationToken.None);

        Assert.Equal(["infinity", "2024-05-01"], sample["due"]);
        // A value it cannot render is no sample: its note would count against the share of values a detector matches.
        Assert.Empty(sample["amount"]);
    }

    [Fact]
    public async Task An_hstore_value_comes_back_as_postgresql_writes_it_with_quotes_escaped_not_as_a_type_name()
    {
        // In a schema of its own: its functions and operators stay out of public, which other tests read.
        await pg.AdminScalarAsync("create schema if not exists hstore_kv");
        await pg.AdminScalarAsync("create extension if not exists hstore with schema hstore_kv");
        await pg.AdminScalarAsync($"grant usage on schema hstore_kv to {pg.GatewayRole}");

        // Read by Npgsql as a dictionary, whose own text is its type name: the detectors would have seen nothing in it.
        var result = await Run("""select 'name=>"Ann \"Q\" Lee", email=>ann@example.com, note=>NULL'::hstore_kv.hstore as h""");

        // In PostgreSQL's own order (shorter keys first), as psql shows it.
        Assert.Equal("\"name\"=>\"Ann \\\"Q\\\" Lee\", \"note\"=>NULL, \"email\"=>\"ann@example.com\"", result.Rows[0][0]);
    }

    [Fact]
    public async Task Rows_come_back_with_column_names_types_and_json_friendly_values()
    {
        var result = await Run("select id, full_name, created_at, 12.50::numeric(10,2) as price, true as ok from customers where id = $1", ["1"]);
        Assert.Equal(["id", "full_name", "created_at", "price", "ok"], result.Columns.Select(c => c.Name));
        Assert.Equal("integer", result.Columns[0].Type);
        var row = Assert.Single(result.Rows);
        Assert.Equal(1L, row[0]);
        Assert.Equal("Amelia Hartmann", row[1]);
        Assert.StartsWith("2025-01-14T09:12:00", (string)row[2]!);
        Assert.Equal(12.50m, row[3]);
        Assert.Equal(true, row[4]);
    }

    [Fact]
    public async Task The_row_cap_stops_the_fetch_and_says_so()
    {
        var result = await Run("select g from generate_series(1, 1000000) g", maxRows: 5);
        Assert.Equal(5, result.Rows.Count);
        Assert.True(result.Truncated);
        Assert.Contains("row limit of 5", result.TruncatedBecause);
    }

    [Fact]
    public async Task A_value_nested_deeper_than_json_allows_is_cut_at_a_depth_every_reader_takes()
    {
        var sql = "select " + string.Concat(Enumerable.Repeat("row(", 70)) + "1" + new string(')', 70) + " as deep";
        var result = await Run(sql);

        var depth = 0;
        object? value = result.Rows[0][0];
        while (value is List<object?> list)
        {
            depth++;
            value = list[0];
        }

        Assert.Equal(ResultReader.MaxNesting, depth);
        Assert.Contains("nested deeper than", (string)value!);
        // What the agent receives serializes: the value is no deeper than JSON's readers allow.
        Assert.NotNull(System.Text.Json.JsonSerializer.Serialize(result.Rows));
    }

    [Fact]
    public async Task Bit_strings_and_multi_dimensional_arrays_come_back_as_postgresql_writes_them_not_as_type_names_or_flattened()
    {
        var result = await Run("select B'1010'::bit(4), '10011'::varbit, array[[1, 2], [3, 4]], array[[['a']], [['b']]]");

        Assert.Equal("1010", result.Rows[0][0]);
        Assert.Equal("10011", result.Rows[0][1]);
        Assert.Equal("[[1,2],[3,4]]", System.Text.Json.JsonSerializer.Serialize(result.Rows[0][2]));
        Assert.Equal("[[[\"a\"]],[[\"b\"]]]", System.Text.Json.JsonSerializer.Serialize(result.Rows[0][3]));
    }

    [Fact]
    public async Task The_byte_cap_stops_wide_results()
    {
        var result = await Run("select repeat('x', 1000) from generate_series(1, 100)", maxBytes: 5000);
        Assert.True(result.Truncated);
        Assert.InRange(result.Rows.Count, 1, 5);
    }

    [Theory]
    [InlineData("select repeat(chr(1), 100) from generate_series(1, 100)")]
    [InlineData("select repeat('€', 100) from generate_series(1, 100)")]
    [InlineData("select repeat(chr(127), 100) from generate_series(1, 100)")]
    [InlineData("select repeat(chr(128512), 50) from generate_series(1, 100)")]
    public async Task The_byte_cap_counts_what_a_value_takes_in_the_answer_not_its_characters(string sql)
    {
        // 10,000 characters, under a 20,000-byte cap by count; as JSON they take 60,000 (\u0001) and 30,000 (UTF-8) bytes.
        var result = await Run(sql, maxBytes: 20_000);
        Assert.True(result.Truncated);
        Assert.InRange(result.Rows.Count, 1, 70);
    }

    [Theory]
    [InlineData("select 1 as small, repeat('x', 300000000) as huge")]
    [InlineData("select array_fill(7, array[40000000]) as huge")]
    public async Task A_single_value_past_the_byte_cap_is_skipped_on_the_wire_never_held(string sql)
    {
        // Buffered, the row alone would be 300 MB (and a 600 MB string), or 40 million boxed numbers.
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var result = await Run(sql, maxBytes: 1 << 20);
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        Assert.True(result.Truncated);
        Assert.Contains("result size limit of 1048576 bytes", result.TruncatedBecause);
        Assert.Empty(result.Rows);
        Assert.True(allocated < 100_000_000, $"{allocated:N0} bytes were allocated to read past the value");

        // The connection is whole afterwards: the next call on it is answered.
        Assert.Equal(1L, (await Run("select 1")).Rows[0][0]);
    }

    [Fact]
    public async Task A_plan_holding_a_huge_folded_constant_is_refused_unread()
    {
        var analyzer = new PostgresAnalyzer(_targets);
        var refused = await Assert.ThrowsAsync<DatabaseException>(() => analyzer.ExplainAsync("shop", "select repeat('x', 20000000)", [], null, CancellationToken.None).AsTask());
        Assert.Equal(DatabaseFailure.Rejected, refused.Failure);
        Assert.Contains("more than the 16 MB the gateway reads to check it", refused.Message, StringComparison.Ordinal);
        // The same statement with a small constant is planned as usual.
        Assert.False((await analyzer.ExplainAsync("shop", "select repeat('x', 20)", [], null, CancellationToken.None)).Writes);
    }

    [Fact]
    public async Task Reads_run_in_a_read_only_transaction()
    {
        var error = await Assert.ThrowsAsync<DatabaseException>(() => Run("select nextval('invoice_seq')"));
        Assert.Equal(DatabaseFailure.Rejected, error.Failure);
        Assert.Contains("read-only transaction", error.Message);
    }

    [Fact]
    public async Task A_statement_past_its_timeout_is_cancelled()
    {
        var error = await Assert.ThrowsAsync<DatabaseException>(() => Run("select pg_sleep(5)", timeout: TimeSpan.FromMilliseconds(200)));
        Assert.Equal(DatabaseFailure.Timeout, error.Failure);
    }

    [Fact]
    public async Task A_statement_the_policy_gives_longer_than_the_clients_default_wait_runs_to_its_end()
    {
        // The connection string's command timeout (Npgsql's default is 30 s) must not cut short what statement_timeout allows.
        await using var targets = TargetsWith(";Command Timeout=1");
        var request = new ExecutionRequest("shop", "select pg_sleep(2), 'slept'", [], ReadOnly: true, Cursor: true, 10, 1 << 20, TimeSpan.FromSeconds(10), Analyst, "aud_test");
        var result = await new PostgresExecutor(targets).ExecuteAsync(request, null, CancellationToken.None);
        Assert.Equal("slept", result.Rows[0][1]);

        var write = request with { Sql = "update orders set note = note where id = (select 1 from pg_sleep(2))", ReadOnly = false, Cursor = false };
        Assert.Equal(1L, (await new PostgresExecutor(targets).ExecuteAsync(write, null, CancellationToken.None)).AffectedRows);
    }

    // The catalog version once a few polls have passed since the change before it.
    private static async Task<string> SettledAsync(PostgresCatalogVersions versions)
    {
        await Task.Delay(4 * PostgresCatalogVersions.PollInterval);
        for (var i = 0; i < 50 && versions.Current("shop") is null; i++)
        {
            await Task.Delay(100);
        }

        return versions.Current("shop") ?? throw new TimeoutException("no catalog version was read");
    }

    [Fact]
    public async Task A_role_granted_to_another_or_given_bypassrls_changes_the_catalog_version()
    {
        // Either changes which row-security policies apply to a plan, so a cached one must not outlive it.
        await using var versions = new PostgresCatalogVersions(_targets, TimeProvider.System);
        versions.Current("shop");
        foreach (var setup in new[] { "drop role if exists version_probe_b", "drop role if exists version_probe_a", "create role version_probe_a", "create role version_probe_b" })
        {
            await pg.AdminScalarAsync(setup);
        }

        try
        {
            var before = await SettledAsync(versions);
            await pg.AdminScalarAsync("grant version_probe_a to version_probe_b");
            var granted = await SettledAsync(versions);
            Assert.NotEqual(before, granted);
            await pg.AdminScalarAsync("alter role version_probe_b bypassrls");
            var bypassing = await SettledAsync(versions);
            Assert.NotEqual(granted, bypassing);
            await pg.AdminScalarAsync("alter role version_probe_b noinherit");
            Assert.NotEqual(bypassing, await SettledAsync(versions));
        }
        finally
        {
            await pg.AdminScalarAsync("drop role if exists version_probe_b");
            await pg.AdminScalarAsync("drop role if exists version_probe_a");
        }
    }

    [Fact]
    public async Task Another_sessions_temporary_tables_leave_the_catalog_version_as_it_was_and_a_real_table_does_not()
    {
        // An application's temp tables come and go all day; a version that followed them would retire cached plans, and stop
        // approved runs as "catalog changed", for nothing an agent's statement could ever name.
        await using var versions = new PostgresCatalogVersions(_targets, TimeProvider.System);
        versions.Current("shop");
        var before = await SettledAsync(versions);
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(pg.AdminConnectionString) { Database = pg.Database };
        await using (var application = new Npgsql.NpgsqlConnection(builder.ConnectionString))
        {
            await application.OpenAsync();
            await using (var temp = new Npgsql.NpgsqlCommand("create temp table scratch_rows (id int, note text)", application))
            {
                await temp.ExecuteNonQueryAsync();
            }

            Assert.Equal(before, await SettledAsync(versions));
        }

        await pg.AdminScalarAsync("create table if not exists catalog_probe_table (id int)");
        try
        {
            Assert.NotEqual(before, await SettledAsync(versions));
        }
        finally
        {
            await pg.AdminScalarAsync("drop table if exists catalog_probe_table");
        }
    }

    [Fact]
    public async Task The_agent_is_named_to_postgres_for_its_own_logs()
    {
        var result = await Run("select current_setting('application_name'), current_setting('gatehouse.agent'), current_setting('gatehouse.call_id')");
        Assert.Equal(["gatehouse:analyst", "analyst", "aud_test"], result.Rows[0]);
    }

    [Fact]
    public async Task An_agent_name_whose_emoji_straddles_the_application_names_limit_is_cut_before_it()
    {
        // Cut at 63 characters, half the emoji was left, which Npgsql cannot encode: every call of that agent failed.
        var agent = new string('a', 52) + "\U0001F600";
        var result = await new PostgresExecutor(_targets).ExecuteAsync(
            new ExecutionRequest("shop", "select current_setting('application_name'), current_setting('gatehouse.agent')", [], ReadOnly: true, Cursor: true, 100, 1 << 20, TimeSpan.FromSeconds(10), Analyst with { Agent = agent }, "aud_test"),
            beforeCommit: null,
            CancellationToken.None);

        Assert.Equal(["gatehouse:" + new string('a', 52), agent], result.Rows[0]);
    }

    [Fact]
    public async Task Statements_run_with_the_pinned_search_path()
    {
        var result = await Run("select current_setting('search_path')");
        Assert.Equal("public", result.Rows[0][0]);
    }

    [Fact]
    public async Task A_write_counts_every_row_it_touched_past_its_returned_rows_and_apart_from_earlier_writes()
    {
        var before = (long)(await pg.AdminScalarAsync("select count(*) from orders"))!;
        // Calls in sequence share one backend, whose statistics keep earlier transactions' counts until it next reports them.
        for (var i = 0; i < 3; i++)
        {
            var write = await Run("update orders set note = note where id <= 5 returning id", readOnly: false, maxRows: 2);
            Assert.Equal(5, write.AffectedRows);
            Assert.Equal(5, write.RowsTouched);
            Assert.Equal(2, write.Rows.Count);
        }

        var plain = await Run("update orders set note = note", readOnly: false);
        Assert.Equal(before, plain.RowsTouched);
        var dryRun = await new PostgresExecutor(_targets).ExecuteAsync(
            new ExecutionRequest("shop", "update orders set note = note where id <= 4", [], ReadOnly: false, Cursor: false, 100, 1 << 20, TimeSpan.FromSeconds(10), Analyst, "aud_test") { DryRun = true },
            null,
            CancellationToken.None);
        Assert.Equal(4, dryRun.RowsTouched);
        Assert.Null((await Run("select 1")).RowsTouched);
    }

    [Fact]
    public async Task A_write_counts_the_rows_its_deferred_triggers_change_at_commit()
    {
        // A trigger DEFERRABLE INITIALLY DEFERRED fires at COMMIT, after the count and the record: its rows went uncounted.
        await pg.AdminScalarAsync("create table deferred_echo (order_id int)");
        await pg.AdminScalarAsync($"grant insert on deferred_echo to \"{pg.GatewayRole}\"");
        await pg.AdminScalarAsync(
            "create function deferred_echo_rows() returns trigger language plpgsql as $$ begin insert into deferred_echo select new.id from generate_series(1, 20); return null; end $$");
        await pg.AdminScalarAsync(
            "create constraint trigger orders_deferred_echo after update on orders deferrable initially deferred for each row execute function deferred_echo_rows()");
        try
        {
            var write = await Run("update orders set note = note where id = 1", readOnly: false);
            Assert.Equal(1, write.AffectedRows);
            Assert.Equal(21, write.RowsTouched);
            Assert.Equal(20L, await pg.AdminScalarAsync("select count(*) from deferred_echo"));
        }
        finally
        {
            await pg.AdminScalarAsync("drop trigger orders_deferred_echo on orders");
            await pg.AdminScalarAsync("drop function deferred_echo_rows()");
            await pg.AdminScalarAsync("drop table deferred_echo");
        }
    }

    [Fact]
    public async Task No_session_state_survives_into_the_next_call()
    {
        await Run("select set_config('search_path', 'pg_catalog', false), set_config('work_mem', '77MB', false)");
        var after = await Run("select current_setting('search_path'), current_setting('work_mem'), current_setting('application_name')");
        Assert.NotEqual("pg_catalog", after.Rows[0][0]);
        Assert.NotEqual("77MB", after.Rows[0][1]);
    }

    [Fact]
    public async Task Only_the_gateways_own_statements_are_prepared_never_an_agents_sql()
    {
        // A connection string asking Npgsql to prepare whatever runs twice is overruled: the next agent on the pooled
        // connection would read a prepared statement's text back, literals and all.
        await using var targets = TargetsWith(";Max Auto Prepare=16;Auto Prepare Min Usages=2");
        Task<QueryResult> RunOn(string sql) => Read(targets, sql);
        for (var i = 0; i < 10; i++)
        {
            await RunOn("select 'a secret literal' as x");
        }

        var rows = (await RunOn("select statement, generic_plans + custom_plans from pg_prepared_statements")).Rows;
        var prepared = rows.Select(r => (string)r[0]!).ToList();
        Assert.Contains("BEGIN READ ONLY", prepared);
        Assert.DoesNotContain(prepared, s => s.Contains("secret", StringComparison.Ordinal) || s.Contains("pg_prepared_statements", StringComparison.Ordinal));
        // Prepared and used: the settings row (the same text and parameter types) ran as its prepared statement each call.
        var settings = rows.Single(r => ((string)r[0]!).Contains("gatehouse.call_id", StringComparison.Ordinal) && !((string)r[0]!).Contains("'role'", StringComparison.Ordinal));
        Assert.True(Convert.ToInt64(settings[1], System.Globalization.CultureInfo.InvariantCulture) >= 11, $"the settings row was planned {settings[1]} times as a prepared statement");
    }

    [Fact]
    public async Task A_connection_string_cannot_turn_off_the_reset_between_calls_keep_connections_forever_or_ask_for_multiplexing()
    {
        await using var targets = TargetsWith(";No Reset On Close=true;Multiplexing=true;Connection Lifetime=0");
        Task<QueryResult> RunOn(string sql) => Read(targets, sql);

        // A session-level advisory lock outlives a rolled-back transaction; only the reset on return to the pool releases it.
        var backend = (await RunOn("select pg_backend_pid(), pg_advisory_lock(4242)")).Rows[0][0];
        var after = await RunOn("select pg_backend_pid(), count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()");
        Assert.Equal(backend, after.Rows[0][0]);
        Assert.Equal(0L, after.Rows[0][1]);
        // Nor keep a connection forever (0), which could take a statement to Npgsql's auto-prepare threshold.
        Assert.Equal(FixedStatements.MaxConnectionLifetime, TimeSpan.FromSeconds(new Npgsql.NpgsqlConnectionStringBuilder(targets.Get("shop").ConnectionString).ConnectionLifetime));
    }

    // One pooled connection, so every call below runs on the same PostgreSQL session as the one before it.
    private PostgresTargets OneSession() => TargetsWith(";Maximum Pool Size=1");

    private static Task<QueryResult> Execute(PostgresTargets targets, string sql, bool readOnly = true, bool dryRun = false, CancellationToken cancellationToken = default) =>
        new PostgresExecutor(targets).ExecuteAsync(
            new ExecutionRequest("shop", sql, [], readOnly, Cursor: readOnly, 100, 1 << 20, TimeSpan.FromSeconds(10), Analyst, "aud_test") { DryRun = dryRun },
            _ => ValueTask.CompletedTask,
            cancellationToken).AsTask();

    private const string AdvisoryLocksHeld = "select pg_backend_pid(), count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()";

    // The session's backend and the advisory locks it holds, read by the next call.
    private static async Task<(object? Backend, long Locks)> LocksAsync(PostgresTargets targets)
    {
        var row = (await Execute(targets, AdvisoryLocksHeld)).Rows[0];
        return (row[0], (long)row[1]!);
    }

    [Fact]
    public async Task A_statement_left_prepared_on_a_probe_connection_fails_one_probe_and_then_no_more()
    {
        await using var targets = OneSession();
        var analyzer = new PostgresAnalyzer(targets);
        Assert.True((await analyzer.ResolveAsync("shop", "select 1", null, CancellationToken.None)).Statement);
        await using (var probe = await targets.OpenProbeAsync("shop", CancellationToken.None))
        {
            // As a cancel landing between the probe's PREPARE and its DEALLOCATE would leave it.
            await using var leave = new Npgsql.NpgsqlCommand("PREPARE gatehouse_probe AS SELECT 1", probe);
            await leave.ExecuteNonQueryAsync();
        }

        var refused = await Assert.ThrowsAsync<DatabaseException>(() => analyzer.ResolveAsync("shop", "select 2", null, CancellationToken.None).AsTask());
        Assert.Contains("already exists", refused.Message);
        Assert.True((await analyzer.ResolveAsync("shop", "select 3", null, CancellationToken.None)).Statement);
    }

    [Fact]
    public async Task An_advisory_lock_taken_while_planning_is_released_before_the_session_is_lent_again()
    {
        // EXPLAIN runs nothing, but the planner folds an immutable function with constant arguments by calling it.
        await pg.AdminScalarAsync("create or replace function plan_time_lock() returns int language plpgsql immutable as $$ begin perform pg_advisory_lock(4343); return 1; end $$");
        await using var targets = OneSession();
        var (backend, _) = await LocksAsync(targets);
        await new PostgresAnalyzer(targets).ExplainAsync("shop", "select plan_time_lock()", [], null, CancellationToken.None);
        Assert.Equal((backend, 0L), await LocksAsync(targets));
    }

    [Fact]
    public async Task A_read_that_fails_after_taking_a_lock_leaves_no_lock_behind()
    {
        await using var targets = OneSession();
        var (backend, _) = await LocksAsync(targets);
        // The first row takes the lock, then divides by zero.
        var error = await Assert.ThrowsAsync<DatabaseException>(() => Execute(targets, "select pg_advisory_lock(4344), 1 / (g - 1) from generate_series(1, 2) g"));
        Assert.Contains("division by zero", error.Message);
        Assert.Equal((backend, 0L), await LocksAsync(targets));
    }

    [Fact]
    public async Task A_cancelled_read_leaves_no_lock_behind()
    {
        await using var targets = OneSession();
        var (backend, _) = await LocksAsync(targets);
        using var cancel = new CancellationTokenSource();
        var call = Execute(targets, "select pg_advisory_lock(4345), pg_sleep(30)", cancellationToken: cancel.Token);
        // Cancelled only once the lock is seen held, so the test cannot pass by cancelling too early.
        await WaitForLockAsync(backend, 4345);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        Assert.Equal((backend, 0L), await LocksAsync(targets));
    }

    private async Task WaitForLockAsync(object? backend, int key)
    {
        var held = $"select count(*) from pg_locks where locktype = 'advisory' and objid = {key} and pid = {backend} and granted";
        for (var deadline = DateTime.UtcNow.AddSeconds(20); (long)(await pg.AdminScalarAsync(held))! == 0; await Task.Delay(20))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the session never took advisory lock {key}");
        }
    }

    [Fact]
    public async Task A_committed_write_leaves_no_session_setting_or_temporary_table_behind()
    {
        await pg.AdminScalarAsync("create table if not exists executor_session_writes (id int primary key, note text)");
        await pg.AdminScalarAsync($"grant select, insert on executor_session_writes to \"{pg.GatewayRole}\"");
        // The gateway's role may not create temporary tables; a function defined by one who may can, in the caller's session.
        await pg.AdminScalarAsync("create or replace function leave_temp_table() returns text language plpgsql security definer as $$ begin create temp table if not exists left_behind (x int); return 'made'; end $$");
        await using var targets = OneSession();
        var (backend, _) = await LocksAsync(targets);
        var workMem = (await Execute(targets, "select current_setting('work_mem')")).Rows[0][0];
        Assert.NotEqual("77MB", workMem);

        var write = await Execute(
            targets,
            "insert into executor_session_writes select 1, set_config('work_mem', '77MB', false) || leave_temp_table() || pg_advisory_lock(4346)::text returning note",
            readOnly: false);
        Assert.Equal("77MBmade", write.Rows[0][0]);
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from executor_session_writes"));

        var after = await Execute(targets, "select pg_backend_pid(), current_setting('work_mem'), to_regclass('pg_temp.left_behind') is null, (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())");
        Assert.Equal([backend, workMem, true, 0L], after.Rows[0]);
    }

    [Fact]
    public async Task A_connection_handed_back_mid_transaction_and_failed_is_never_lent_again()
    {
        await using var targets = OneSession();
        var (backend, _) = await LocksAsync(targets);
        await using (var pooled = await targets.OpenAsync("shop", CancellationToken.None))
        {
            // A caller that leaves an aborted transaction behind: no reset can run in it.
            await using var batch = pooled.Connection.CreateBatch();
            batch.BatchCommands.Add(new Npgsql.NpgsqlBatchCommand("BEGIN"));
            batch.BatchCommands.Add(new Npgsql.NpgsqlBatchCommand("SELECT pg_advisory_lock(4347)"));
            batch.BatchCommands.Add(new Npgsql.NpgsqlBatchCommand("SELECT 1 / 0"));
            await Assert.ThrowsAsync<Npgsql.PostgresException>(() => batch.ExecuteNonQueryAsync());
        }

        await AssertNeverLentAgainAsync(targets, backend);
    }

    [Fact]
    public async Task A_connection_handed_back_with_its_transaction_open_lends_the_next_call_none_of_it()
    {
        await pg.AdminScalarAsync("create table if not exists executor_open_transaction (id int primary key)");
        await pg.AdminScalarAsync($"grant select, insert on executor_open_transaction to \"{pg.GatewayRole}\"");
        await using var targets = OneSession();
        await using (var pooled = await targets.OpenAsync("shop", CancellationToken.None))
        {
            // A piece of work that ends with its write neither committed nor failed: the reset after it runs in that transaction.
            await using var batch = pooled.Connection.CreateBatch();
            batch.BatchCommands.Add(new Npgsql.NpgsqlBatchCommand("BEGIN"));
            batch.BatchCommands.Add(new Npgsql.NpgsqlBatchCommand("INSERT INTO executor_open_transaction VALUES (1)"));
            await batch.ExecuteNonQueryAsync();
        }

        // Lent on with the transaction open, the next write's COMMIT would commit the abandoned row, and a read would see it.
        await Execute(targets, "insert into executor_open_transaction values (2)", readOnly: false);
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from executor_open_transaction where id = 1"));
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from executor_open_transaction where id = 2"));
        Assert.Equal(0L, (await Execute(targets, "select count(*) from executor_open_transaction where id = 1")).Rows[0][0]);
    }

    [Fact]
    public async Task A_connection_handed_back_with_a_reader_still_open_is_never_lent_again()
    {
        await using var targets = OneSession();
        var (backend, _) = await LocksAsync(targets);
        await using (var pooled = await targets.OpenAsync("shop", CancellationToken.None))
        {
            var command = new Npgsql.NpgsqlCommand("SELECT pg_advisory_lock(4348), g FROM generate_series(1, 100000) g", pooled.Connection);
            var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
        }

        await AssertNeverLentAgainAsync(targets, backend);
    }

    [Fact]
    public async Task A_write_whose_reset_fails_after_commit_is_reported_committed_and_its_connection_never_lent_again()
    {
        await pg.AdminScalarAsync("create table if not exists executor_reset_fails (id int primary key)");
        await pg.AdminScalarAsync($"grant select, insert on executor_reset_fails to \"{pg.GatewayRole}\"");
        await using var targets = OneSession();
        var (backend, _) = await LocksAsync(targets);
        // With the lock release refused, the reset after COMMIT fails, once the write has committed.
        await pg.AdminScalarAsync("revoke execute on function pg_advisory_unlock_all() from public");
        QueryResult write;
        try
        {
            write = await Execute(targets, "insert into executor_reset_fails values (1)", readOnly: false);
        }
        finally
        {
            await pg.AdminScalarAsync("grant execute on function pg_advisory_unlock_all() to public");
        }

        Assert.Equal(1, write.AffectedRows);
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from executor_reset_fails"));
        await AssertNeverLentAgainAsync(targets, backend);
    }

    // The next call runs on another session, and the one handed back is closed (its locks with it).
    private async Task AssertNeverLentAgainAsync(PostgresTargets targets, object? backend)
    {
        var (next, locks) = await LocksAsync(targets);
        Assert.NotEqual(backend, next);
        Assert.Equal(0L, locks);
        await WaitForBackendGoneAsync(backend);
    }

    private async Task WaitForBackendGoneAsync(object? backend)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(20); (long)(await pg.AdminScalarAsync($"select count(*) from pg_stat_activity where pid = {backend}"))! > 0; await Task.Delay(20))
        {
            Assert.True(DateTime.UtcNow < deadline, $"backend {backend} is still connected");
        }
    }

    [Fact]
    public async Task A_dry_run_leaves_no_sequence_state_behind_and_no_rows()
    {
        await using var targets = OneSession();
        var (backend, _) = await LocksAsync(targets);

        var drawn = await Execute(targets, "select nextval('invoice_seq')", readOnly: false, dryRun: true);
        Assert.Single(drawn.Rows);
        // In the same session, currval would still answer with the value drawn: the reset forgets it.
        var error = await Assert.ThrowsAsync<DatabaseException>(() => Execute(targets, "select currval('invoice_seq')"));
        Assert.Contains("not yet defined in this session", error.Message);

        // A write that returns no rows reports none (the reset's own row is not taken for the statement's).
        var update = await Execute(targets, "update orders set note = note where id = 1", readOnly: false, dryRun: true);
        Assert.Empty(update.Columns);
        Assert.Empty(update.Rows);
        Assert.Equal(1, update.AffectedRows);
        Assert.Equal(backend, (await LocksAsync(targets)).Backend);
    }

    [Fact]
    public async Task A_void_column_named_like_the_gateways_own_rows_is_the_agents_result()
    {
        // The gateway's settings and lock-release rows are one void or text column named gatehouse_session; an agent's
        // statement may return the same, and its rows are still its own, in a read, a write and a dry run alike.
        const string Void = "pg_sleep(0) as gatehouse_session";
        await using var targets = OneSession();
        var read = await Execute(targets, $"select {Void}");
        Assert.Equal(["gatehouse_session"], read.Columns.Select(c => c.Name));
        Assert.Equal("void", read.Columns[0].Type);
        Assert.Single(read.Rows);

        var write = await Execute(targets, $"update orders set note = note where id = 1 returning {Void}", readOnly: false);
        Assert.Equal(["gatehouse_session"], write.Columns.Select(c => c.Name));
        Assert.Single(write.Rows);
        Assert.Equal(1, write.AffectedRows);

        var dryRun = await Execute(targets, $"update orders set note = note where id in (1, 2) returning {Void}", readOnly: false, dryRun: true);
        Assert.Equal(2, dryRun.Rows.Count);
    }

    [Fact]
    public async Task Parameters_are_values_not_sql()
    {
        var result = await Run("select count(*) from customers where full_name = $1", ["x' or '1'='1"]);
        Assert.Equal(0L, result.Rows[0][0]);
    }

    [Fact]
    public async Task Two_statements_in_one_text_are_refused_by_postgres_itself()
    {
        var error = await Assert.ThrowsAsync<DatabaseException>(() => Run("select 1; select 2", readOnly: false));
        Assert.Contains("multiple commands", error.Message);
    }

    [Fact]
    public async Task A_write_commits_and_reports_affected_rows()
    {
        await pg.AdminScalarAsync($"create table if not exists executor_writes (id int primary key, note text)");
        await pg.AdminScalarAsync($"grant select, insert, update, delete on executor_writes to \"{pg.GatewayRole}\"");
        var insert = await Run("insert into executor_writes values ($1, $2), ($3, $4) returning id", ["1", "a", "2", "b"], readOnly: false);
        Assert.Equal(2, insert.AffectedRows);
        Assert.Equal(2, insert.Rows.Count);
        Assert.Equal(2L, await pg.AdminScalarAsync("select count(*) from executor_writes"));
    }

    [Fact]
    public async Task A_write_is_rolled_back_when_the_step_before_commit_fails()
    {
        await pg.AdminScalarAsync("create table if not exists executor_uncommitted (id int primary key)");
        await pg.AdminScalarAsync($"grant select, insert on executor_uncommitted to \"{pg.GatewayRole}\"");
        var request = new ExecutionRequest("shop", "insert into executor_uncommitted values (1)", [], ReadOnly: false, Cursor: false, 10, 1 << 20, TimeSpan.FromSeconds(10), Analyst, "aud_test");
        await Assert.ThrowsAsync<IOException>(() => new PostgresExecutor(_targets).ExecuteAsync(request, _ => throw new IOException("audit store lost"), CancellationToken.None).AsTask());
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from executor_uncommitted"));
        var committed = await new PostgresExecutor(_targets).ExecuteAsync(request, _ => ValueTask.CompletedTask, CancellationToken.None);
        Assert.Equal(1, committed.AffectedRows);
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from executor_uncommitted"));
    }

    [Fact]
    public async Task Explain_reports_relations_read_and_written_without_running_anything()
    {
        var analyzer = new PostgresAnalyzer(_targets);
        var facts = await analyzer.ExplainAsync("shop", "with d as (delete from orders where id = $1 returning customer_id) select c.email from customers c join d on d.customer_id = c.id", ["1"], null, CancellationToken.None);
        Assert.Contains(new RelationAccess(new RelationName("public", "orders"), AccessLevel.Write, "delete"), facts.Relations);
        Assert.Contains(new RelationAccess(new RelationName("public", "customers"), AccessLevel.Read, "read"), facts.Relations);
        Assert.Equal(["c.email"], facts.Outputs);
        Assert.True(facts.EstimatedCost > 0);
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from orders where id = 1"));

        var bulk = await analyzer.ExplainAsync("shop", "update orders set note = 'x' where total >= 0", [], null, CancellationToken.None);
        Assert.InRange(bulk.EstimatedWriteRows, 40, 200);
    }

    [Fact]
    public async Task The_catalog_describes_columns_keys_and_comments()
    {
        var tables = await new PostgresCatalog(_targets).DescribeAsync("shop", "public", "payments", CancellationToken.None);
        var payments = Assert.Single(tables);
        Assert.Contains("invoice numbers", payments.Comment);
        Assert.Equal(["id"], payments.PrimaryKey);
        var fk = Assert.Single(payments.ForeignKeys);
        Assert.Equal(new RelationName("public", "orders"), fk.References);
        Assert.Contains(payments.Columns, c => c is { Name: "invoice_no", Type: "bigint", Nullable: false });
    }
}
