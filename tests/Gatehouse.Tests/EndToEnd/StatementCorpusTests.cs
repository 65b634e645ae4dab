using Gatehouse.Tests.Infrastructure;
using ModelContextProtocol.Client;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>The public corpus through the real MCP path: each statement gets its decision, and a refused one changes nothing.</summary>
[Collection(PostgresCollection.Name)]
public sealed class StatementCorpusTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string LeakFile = "/tmp/gatehouse_leak";

    // Schema, data, sequences, roles and large objects in one string: any change to the database changes it.
    private const string Fingerprint =
        "select (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public')"
        + " || ':' || (select md5(string_agg(md5(t::text), '' order by id)) from customers t)"
        + " || ':' || (select md5(string_agg(md5(t::text), '' order by id)) from orders t)"
        + " || ':' || (select md5(string_agg(md5(t::text), '' order by id)) from payments t)"
        + " || ':' || (select last_value from invoice_seq) || ':' || (select count(*) from pg_roles)"
        + " || ':' || (select count(*) from pg_largeobject_metadata) || ':' || (select count(*) from pg_proc)";

    private readonly TestGateway _gateway = TestGateway.Create(pg);
    private HttpGateway _server = null!;
    private readonly Dictionary<string, McpClient> _clients = [];

    public async Task InitializeAsync()
    {
        _server = await HttpGateway.StartAsync(_gateway);
        foreach (var agent in new[] { "analyst", "ops-bot" })
        {
            _clients[agent] = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint(agent));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var client in _clients.Values)
        {
            await client.DisposeAsync();
        }

        await _server.DisposeAsync();
    }

    [Fact]
    public void The_corpus_has_at_least_a_hundred_statements() => Assert.True(StatementCorpus.Cases().Count >= 100);

    [Fact]
    public async Task SQL_JSON_query_functions_run_from_PostgreSQL_17_and_what_they_call_is_still_vetted()
    {
        // JSON_VALUE, JSON_QUERY, JSON_EXISTS and JSON_TABLE print like calls but are no pg_proc functions; a function called
        // inside one (a DEFAULT, a PASSING value) is in the parse tree, and vetted as anywhere else.
        var version = Convert.ToInt32(await pg.AdminScalarAsync("select current_setting('server_version_num')"));
        const string Json = "'{\"a\": 7, \"b\": [1, 2]}'::jsonb";
        var read = await _clients["analyst"].QueryAsync(
            $"select json_value({Json}, '$.a' returning int), json_query({Json}, '$.b'), json_exists({Json}, '$.c'), (select count(*) from json_table({Json}, '$.b[*]' columns (x int path '$')) jt), json_value({Json}, '$.z' default 'none' on empty)");
        var vetted = await _clients["analyst"].QueryAsync($"select json_value({Json}, '$.z' default pg_read_file('/etc/hostname') on empty)");
        if (version >= 170000)
        {
            Assert.True(read.IsError != true, read.Text());
            var row = read.Structured().GetProperty("rows")[0];
            Assert.Equal(7, row[0].GetInt32());
            Assert.False(row[2].GetBoolean());
            Assert.Equal(2, row[3].GetInt64());
            Assert.Equal("none", row[4].GetString());
            Assert.Equal("function.not_allowed", vetted.Rule());
            Assert.Contains("pg_read_file", vetted.Text());
        }
        else
        {
            // Before 17 these are syntax errors, and PostgreSQL says so.
            Assert.Equal("database.rejected", read.Rule());
            Assert.Equal("database.rejected", vetted.Rule());
        }
    }

    [Fact]
    public async Task A_merge_returns_what_it_did_from_PostgreSQL_17()
    {
        // MERGE_ACTION() prints like a call but is no pg_proc function; RETURNING on MERGE is new in 17.
        var version = Convert.ToInt32(await pg.AdminScalarAsync("select current_setting('server_version_num')"));
        var merged = await _clients["ops-bot"].QueryAsync(
            "merge into orders t using (select 1 as id) s on t.id = s.id when matched then update set note = t.note returning merge_action(), t.id");
        if (version >= 170000)
        {
            Assert.True(merged.IsError != true, merged.Text());
            var row = merged.Structured().GetProperty("rows")[0];
            Assert.Equal("UPDATE", row[0].GetString());
            Assert.Equal(1, row[1].GetInt32());
        }
        else
        {
            Assert.Equal("database.rejected", merged.Rule());
        }
    }

    [Fact]
    public async Task A_window_with_a_range_offset_and_a_recursive_query_with_a_cycle_clause_run()
    {
        // Their in_range support function and the cycle mark's <> are read from the parse tree and vetted: built-ins pass.
        var windowed = await _clients["analyst"].QueryAsync(
            "select id, sum(total) over (order by created_at range between interval '1 day' preceding and current row) from orders order by id limit 3");
        Assert.True(windowed.IsError != true, windowed.Text());
        var cycled = await _clients["analyst"].QueryAsync(
            "with recursive r(n) as (select 1 union all select n % 3 + 1 from r) cycle n set looped using path select count(*) from r");
        Assert.True(cycled.IsError != true, cycled.Text());
        Assert.Equal(4, cycled.Structured().GetProperty("rows")[0][0].GetInt32());
    }

    [Fact]
    public async Task SQL_time_functions_with_a_precision_run()
    {
        // Before PostgreSQL 16 these print as CURRENT_TIMESTAMP(3) but are no catalog functions.
        var now = await _clients["analyst"].QueryAsync("select current_timestamp(3), localtimestamp(2), current_time(1), localtime(0), current_date");
        Assert.True(now.IsError != true, now.Text());
    }

    [Fact]
    public async Task UUID_version_4_and_7_generators_run_from_PostgreSQL_18()
    {
        // Volatile like gen_random_uuid(), and as harmless: they change no state.
        var version = Convert.ToInt32(await pg.AdminScalarAsync("select current_setting('server_version_num')"));
        var made = await _clients["analyst"].QueryAsync("select uuidv4(), uuidv7(), uuidv7(interval '-1 hour'), uuid_extract_version(uuidv7())");
        if (version >= 180000)
        {
            Assert.True(made.IsError != true, made.Text());
            var row = made.Structured().GetProperty("rows")[0];
            Assert.Equal(4, Guid.Parse(row[0].GetString()!).Version);
            Assert.Equal(7, Guid.Parse(row[1].GetString()!).Version);
            Assert.Equal(7, row[3].GetInt16());
        }
        else
        {
            // Before 18 they do not exist, and PostgreSQL says so.
            Assert.Equal("database.rejected", made.Rule());
        }
    }

    [Fact]
    public async Task XMLTABLE_reads_a_document_and_what_it_calls_is_still_vetted()
    {
        const string Document = "'<rows><row a=\"1\">x</row><row a=\"2\">y</row></rows>'::xml";
        var read = await _clients["analyst"].QueryAsync(
            $"select t.a, t.v, t.n, t.d, t.w from xmltable('/rows/row' passing ({Document}) columns a int path '@a', v varchar(5) path '.', n for ordinality, d text path '@d' default 'none', w character(2) path '@a') t order by t.a");
        Assert.True(read.IsError != true, read.Text());
        var rows = read.Structured().GetProperty("rows");
        Assert.Equal(2, rows.GetArrayLength());
        Assert.Equal("y", rows[1][1].GetString());
        Assert.Equal("none", rows[1][3].GetString());
        Assert.Equal("2 ", rows[1][4].GetString());
        var spaced = await _clients["analyst"].QueryAsync(
            "select x.v from xmltable(xmlnamespaces('urn:g' as g), '/g:r' passing xmlparse(document '<r xmlns=\"urn:g\">z</r>') columns v text path '.' not null) x");
        Assert.True(spaced.IsError != true, spaced.Text());
        Assert.Equal("z", spaced.Structured().GetProperty("rows")[0][0].GetString());
        var vetted = await _clients["analyst"].QueryAsync(
            "select t.v from xmltable('/r' passing xmlparse(document pg_read_file('/etc/hostname')) columns v text path '.') t");
        Assert.Equal("function.not_allowed", vetted.Rule());
        Assert.Contains("pg_read_file", vetted.Text());
    }

    [Fact]
    public async Task A_function_the_planner_runs_while_planning_is_refused_before_it_can_run()
    {
        // IMMUTABLE with constant arguments: the planner calls it while planning and its plan prints only the result.
        await pg.AdminScalarAsync("create table vault (k text, v text)");
        await pg.AdminScalarAsync("insert into vault values ('door', 'hunter2')");
        await pg.AdminScalarAsync("create function vault_peek(key text) returns text language sql immutable security definer as 'select v from vault where k = key'");
        await pg.AdminScalarAsync("create operator ### (function = vault_peek, rightarg = text)");
        await pg.AdminScalarAsync("create function \"Vault_Peek\"(key text) returns text language sql immutable security definer as 'select v from vault where k = key'");
        await pg.AdminScalarAsync("create function rollup(key text) returns int language sql immutable security definer as 'select length(v) from vault where k = key'");
        await pg.AdminScalarAsync("create type vault_key as (v text)");
        await pg.AdminScalarAsync("create function vault_redeem(key text) returns vault_key language sql immutable security definer as 'select row(v)::vault_key from vault where k = key'");
        await pg.AdminScalarAsync("create cast (text as vault_key) with function vault_redeem(text)");
        try
        {
            var peek = await _clients["analyst"].QueryAsync("select vault_peek('door') as v");
            Assert.True(peek.IsError, $"it ran: {peek.Text()}");
            Assert.True(peek.Rule() == "function.not_allowed", peek.Text());
            Assert.Contains("SECURITY DEFINER", peek.Text());
            Assert.DoesNotContain("hunter2", peek.Text());

            // A function named in the text is vetted like one in the plan, wherever it sits.
            var hidden = await _clients["analyst"].QueryAsync("select 1 as one from customers where id = 1 and length(public.\"vault_peek\"('door')) > 0");
            Assert.Equal("function.not_allowed", hidden.Rule());

            // Neither after a cast, as PostgreSQL prints it too, nor behind a carriage return that ends a comment.
            // Nor however the text hides it from a reader that is not PostgreSQL's own: PostgreSQL says what the statement calls.
            foreach (var (sql, parameters) in new (string, object?[]?)[]
            {
                ("select case when true::bool then vault_peek('door') end as v", null),
                ("select 1 --note\r, vault_peek('door') as v\n, 2", null),
                ("select E'a'\n'\\'', vault_peek('door') as leaked -- '", null),
                ("select \"Vault_Peek\"('door') as v", null),
                ("select Vault_Peek($1) as v", ["door"]),
                ("select count(*) from customers group by (rollup('door'))", null),
            })
            {
                var after = await _clients["analyst"].QueryAsync(sql, parameters);
                Assert.True(after.IsError, $"it ran: {after.Text()}");
                Assert.Equal("function.not_allowed", after.Rule());
            }

            // An operator over it runs it as a call would, and no plan names either.
            var viaOperator = await _clients["analyst"].QueryAsync("select ### 'door' as v");
            Assert.True(viaOperator.IsError, $"it ran: {viaOperator.Text()}");
            Assert.Equal("function.not_allowed", viaOperator.Rule());
            Assert.Contains("public.vault_peek", viaOperator.Text());

            // So does a cast.
            var viaCast = await _clients["analyst"].QueryAsync("select ('door'::text)::vault_key as v");
            Assert.True(viaCast.IsError, $"it ran: {viaCast.Text()}");
            Assert.Contains("public.vault_redeem", viaCast.Text());
        }
        finally
        {
            await pg.AdminScalarAsync("drop type vault_key cascade");
            await pg.AdminScalarAsync("drop function \"Vault_Peek\"(text)");
            await pg.AdminScalarAsync("drop function rollup(text)");
            await pg.AdminScalarAsync("drop function vault_peek(text) cascade");
            await pg.AdminScalarAsync("drop table vault");
        }
    }

    [Theory]
    [MemberData(nameof(StatementCorpus.Cases), MemberType = typeof(StatementCorpus))]
    public async Task Each_statement_gets_its_decision_and_a_refusal_changes_nothing(string agent, string sql, string expected)
    {
        var before = await pg.AdminScalarAsync(Fingerprint);
        var result = await _clients[agent].QueryAsync(sql);
        if (expected == StatementCorpus.Allowed)
        {
            Assert.False(result.IsError == true, result.Text());
        }
        else
        {
            Assert.True(result.IsError, $"expected {expected}, but it ran: {result.Text()}");
            Assert.Contains(result.Rule(), expected.Split('|'));
        }

        Assert.Equal(before, await pg.AdminScalarAsync(Fingerprint));
        Assert.False(File.Exists(LeakFile));
        var session = await _clients[agent].QueryAsync("select current_setting('search_path'), current_setting('statement_timeout') <> '0'");
        Assert.Equal("public", session.Structured().GetProperty("rows")[0][0].GetString());
    }
}
