using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>Policy guardrails and observe-only mode through the real MCP path against the shop.</summary>
[Collection(PostgresCollection.Name)]
public sealed class GuardrailTests(PostgresFixture pg)
{
    /// <summary>ops-bot writes orders and payments; payments need a human (also used by the approval tests).</summary>
    internal const string Agents = """
        agents:
          ops-bot:
            grants:
              - connection: shop
                access: read
                schemas: [public]
              - connection: shop
                access: write
                tables: [public.orders, public.payments, public.observed_rows]
          analyst:
            grants:
              - connection: shop
                access: read
                schemas: [public]
        guardrails:
          - id: payments-by-hand
            match: { tables: [public.payments], operations: [update, delete] }
            outcome: require_approval
            message: Payments are changed by people
        """;

    // A guardrail denying deletes from the table named.
    private static string ChildrenKept(string children) => $$"""

              - id: children-kept
                match: { tables: [public.{{children}}], operations: [delete] }
                outcome: deny
                message: Children are not deleted

            """;

    // The gateway with its connection set to observe_only.
    private static TestGateway Observing(TestGateway gateway)
    {
        File.WriteAllText(gateway.PolicyPath, File.ReadAllText(gateway.PolicyPath).Replace("password_file: shop.password", "password_file: shop.password\n    observe_only: true"));
        return TestGateway.Reload(gateway);
    }

    // The agents, with ops-bot also writing the table named.
    private static string AgentsAlsoWriting(string table) =>
        Agents.Replace("public.observed_rows]", $"public.observed_rows, public.{table}]", StringComparison.Ordinal);

    [Fact]
    public async Task A_write_estimated_past_the_limit_is_refused_and_a_small_one_runs()
    {
        var gateway = TestGateway.Create(pg, Agents, gateway: "limits:\n  max_write_rows: 10");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var before = await pg.AdminScalarAsync("select count(*) from orders where note = 'bulk'");

        var bulk = await client.QueryAsync("update orders set note = 'bulk' where total >= 0");
        Assert.Equal("guard.large_write", bulk.Rule());
        Assert.Equal(before, await pg.AdminScalarAsync("select count(*) from orders where note = 'bulk'"));

        var single = await client.QueryAsync("update orders set note = 'single' where id = $1", [3]);
        Assert.Equal(1, single.Structured().GetProperty("affected_rows").GetInt32());
    }

    [Fact]
    public async Task A_guardrail_on_a_function_matches_a_call_the_planner_folds_away_and_a_cached_plan_too()
    {
        // md5('x') plans as its result: the plan never names md5, but the statement does.
        var gateway = TestGateway.Create(pg, Agents + """

              - id: no-digests
                match: { functions: [pg_catalog.md5] }
                outcome: deny
                message: No digests here
            """);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));

        // The first call starts the catalog watch, which reads its first version at once; from then on plans are cached, so
        // md5's first call is planned and its second answered from that plan.
        Assert.NotEqual(true, (await client.QueryAsync("select 1")).IsError);
        await Task.Delay(3 * Gatehouse.Connectors.Postgres.PostgresCatalogVersions.PollInterval);
        foreach (var attempt in new[] { "planned", "cached" })
        {
            var refused = await client.QueryAsync("select md5('x') as digest");
            Assert.True(refused.Rule() == "guard.no-digests", $"{attempt}: {refused.Text()}");
        }

        Assert.NotEqual(true, (await client.QueryAsync("select upper('x')")).IsError);
    }

    [Fact]
    public async Task A_write_classified_with_one_parameter_value_is_classified_again_for_another()
    {
        // PostgreSQL plans with the values bound, so "or $2" with false is a one-row update and with true every row.
        var gateway = TestGateway.Create(pg, Agents, gateway: "limits:\n  max_write_rows: 10");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        const string sql = "update orders set note = 'param-flip' where id = $1 or $2::bool";

        // The first call starts the catalog watch; once it has read a version (its first poll is at once), plans are cached.
        Assert.Equal(1, (await client.QueryAsync(sql, [3, "false"])).Structured().GetProperty("affected_rows").GetInt32());
        await Task.Delay(3 * Gatehouse.Connectors.Postgres.PostgresCatalogVersions.PollInterval);
        Assert.Equal(1, (await client.QueryAsync(sql, [3, "false"])).Structured().GetProperty("affected_rows").GetInt32());

        // With true the condition is dropped as always true: the plan scans every row with no filter.
        var every = await client.QueryAsync(sql, [3, "true"]);
        Assert.Equal("guard.unbounded_write", every.Rule());
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from orders where note = 'param-flip'"));
    }

    [Fact]
    public async Task A_write_whose_estimate_is_steered_low_is_held_to_the_limit_by_the_rows_it_really_touched()
    {
        // The planner guesses 0.5% for each condition it has no statistics for: two of them make every row look like one.
        var gateway = TestGateway.Create(pg, Agents, gateway: "limits:\n  max_write_rows: 10");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var rows = (long)(await pg.AdminScalarAsync("select count(*) from orders"))!;
        Assert.True(rows > 10, $"the fixture has {rows} orders");

        var steered = await client.QueryAsync("update orders set note = 'steered' where id % 1 = 0 and (id + 0) % 1 = 0");
        Assert.Equal("guard.large_write", steered.Rule());
        Assert.Contains($"this write touched {rows} rows, more than the limit of 10", steered.Text(), StringComparison.Ordinal);
        Assert.Contains("rolled back", steered.Text(), StringComparison.Ordinal);
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from orders where note = 'steered'"));
        Assert.Equal(1, (await client.QueryAsync("update orders set note = 'steered' where id = $1", [4])).Structured().GetProperty("affected_rows").GetInt32());
    }

    [Fact]
    public async Task A_where_clause_bound_to_true_is_judged_by_the_plan_as_no_where_clause()
    {
        // The text has a WHERE; PostgreSQL, planning with the value bound, drops it as always true.
        var gateway = TestGateway.Create(pg, Agents);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));

        var everything = await client.QueryAsync("update orders set note = 'everything' where $1", ["true"]);
        Assert.Equal("guard.unbounded_write", everything.Rule());
        Assert.Contains("no condition on public.orders", everything.Text(), StringComparison.Ordinal);
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from orders where note = 'everything'"));

        var nothing = await client.QueryAsync("update orders set note = 'everything' where $1", ["false"]);
        Assert.Equal(0, nothing.Structured().GetProperty("affected_rows").GetInt32());
    }

    [Fact]
    public async Task A_write_is_held_to_the_rows_its_foreign_key_cascades_and_triggers_change_too()
    {
        // The cascade runs with the children's owner's rights: the gateway's role may not touch them itself.
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (parents, children, log) = ($"cascade_parents_{suffix}", $"cascade_children_{suffix}", $"cascade_log_{suffix}");
        await pg.AdminScalarAsync($"create table {parents} (id int primary key, note text)");
        await pg.AdminScalarAsync($"create table {children} (id serial primary key, parent_id int not null references {parents} on delete cascade)");
        await pg.AdminScalarAsync($"create table {log} (parent_id int)");
        await pg.AdminScalarAsync($"insert into {parents} values (1, ''), (2, '')");
        await pg.AdminScalarAsync($"insert into {children} (parent_id) select p from generate_series(1, 20), (values (1)) v(p) union all select 2 from generate_series(1, 3)");
        await pg.AdminScalarAsync(
            $"create function {log}_note() returns trigger language plpgsql as $$ begin insert into {log} select new.id from generate_series(1, 12); return new; end $$");
        await pg.AdminScalarAsync($"create trigger {log}_note after update on {parents} for each row execute function {log}_note()");
        await pg.AdminScalarAsync($"grant select, update, delete on {parents} to \"{pg.GatewayRole}\"");
        await pg.AdminScalarAsync($"grant insert on {log} to \"{pg.GatewayRole}\"");
        try
        {
            var gateway = TestGateway.Create(pg, AgentsAlsoWriting(parents), gateway: "limits:\n  max_write_rows: 10");
            await using var server = await HttpGateway.StartAsync(gateway);
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));

            var cascaded = await client.QueryAsync($"delete from {parents} where id = 1");
            Assert.Equal("guard.large_write", cascaded.Rule());
            Assert.Contains("this write touched 21 rows, more than the limit of 10", cascaded.Text(), StringComparison.Ordinal);
            Assert.Contains("the statement itself changed 1; its triggers and foreign-key cascades changed the rest", cascaded.Text(), StringComparison.Ordinal);
            Assert.Equal(20L, await pg.AdminScalarAsync($"select count(*) from {children} where parent_id = 1"));

            var triggered = await client.QueryAsync($"update {parents} set note = 'x' where id = 1");
            Assert.Equal("guard.large_write", triggered.Rule());
            Assert.Contains("this write touched 13 rows", triggered.Text(), StringComparison.Ordinal);
            Assert.Equal(0L, await pg.AdminScalarAsync($"select count(*) from {log}"));

            // A statement-level trigger writes whatever rows the statement itself changes, none included; a RETURNING that
            // returns nothing is counted as well as one without.
            await pg.AdminScalarAsync(
                $"create function {log}_batch() returns trigger language plpgsql as $$ begin insert into {log} select 0 from generate_series(1, 11); return null; end $$");
            await pg.AdminScalarAsync($"create trigger {log}_batch after update on {parents} for each statement execute function {log}_batch()");
            foreach (var returning in new[] { "", " returning id" })
            {
                var none = await client.QueryAsync($"update {parents} set note = 'y' where id = 99{returning}");
                Assert.Equal("guard.large_write", none.Rule());
                Assert.Contains("this write touched 11 rows", none.Text(), StringComparison.Ordinal);
                Assert.Contains("the statement itself changed 0", none.Text(), StringComparison.Ordinal);
            }

            Assert.Equal(0L, await pg.AdminScalarAsync($"select count(*) from {log}"));
            await pg.AdminScalarAsync($"drop trigger {log}_batch on {parents}");

            // Four rows in all (one parent, three children) are within the limit: on record as four, while the result counts
            // the statement's own.
            var small = await client.QueryAsync($"delete from {parents} where id = 2");
            Assert.True(small.IsError != true, small.Text());
            Assert.Equal(1, small.Structured().GetProperty("affected_rows").GetInt32());
            Assert.Equal(4, (await server.State.GetAsync(small.AuditId(), CancellationToken.None))!.RowCount);
            Assert.Equal(0L, await pg.AdminScalarAsync($"select count(*) from {children} where parent_id = 2"));
        }
        finally
        {
            await pg.AdminScalarAsync($"drop table {children}, {parents}, {log}");
            await pg.AdminScalarAsync($"drop function {log}_note(), {log}_batch()");
        }
    }

    [Fact]
    public async Task A_guardrail_on_a_table_holds_rows_a_cascade_or_trigger_writes_there_though_the_plan_never_names_it()
    {
        // The plan of a DELETE on parents names parents alone: its cascade into children (partitions of a partitioned table)
        // and its trigger's insert into log are PostgreSQL's doing, with the owner's rights.
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (parents, children, log) = ($"guarded_parents_{suffix}", $"guarded_children_{suffix}", $"guarded_log_{suffix}");
        await pg.AdminScalarAsync($"create table {parents} (id int primary key, note text)");
        await pg.AdminScalarAsync($"create table {children} (parent_id int not null references {parents} on delete cascade) partition by list (parent_id)");
        await pg.AdminScalarAsync($"create table {children}_1 partition of {children} for values in (1)");
        await pg.AdminScalarAsync($"create table {log} (parent_id int)");
        await pg.AdminScalarAsync($"insert into {parents} values (1, ''), (2, '')");
        await pg.AdminScalarAsync($"insert into {children} values (1), (1)");
        // A sequence is not rolled back: it counts the trigger's runs.
        await pg.AdminScalarAsync($"create sequence {log}_runs");
        await pg.AdminScalarAsync(
            $"create function {log}_note() returns trigger language plpgsql as $$ begin perform nextval('{log}_runs'); insert into {log} values (new.id); return new; end $$");
        await pg.AdminScalarAsync($"grant usage on sequence {log}_runs to \"{pg.GatewayRole}\"");
        await pg.AdminScalarAsync($"create trigger {log}_note after update on {parents} for each row execute function {log}_note()");
        await pg.AdminScalarAsync($"grant select, update, delete on {parents} to \"{pg.GatewayRole}\"");
        await pg.AdminScalarAsync($"grant insert on {log} to \"{pg.GatewayRole}\"");
        try
        {
            var gateway = TestGateway.Create(pg, AgentsAlsoWriting(parents) + ChildrenKept(children) + $$"""
                  - id: log-never-updated
                    match: { tables: [public.{{log}}], operations: [update] }
                    outcome: deny
                  - id: log-by-hand
                    match: { tables: [public.{{log}}] }
                    outcome: require_approval
                    message: The log is written by people
                approvals:
                  approvers: [alice]
                  wait: 0s
                """);
            await using var server = await HttpGateway.StartAsync(gateway);
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));

            var cascaded = await client.QueryAsync($"delete from {parents} where id = 1");
            Assert.True(cascaded.Rule() == "guard.children-kept", cascaded.Text());
            Assert.Contains($"and also deleted from public.{children}_1 through its triggers or foreign-key cascades, which its plan does not show, so it was rolled back", cascaded.Text(), StringComparison.Ordinal);
            Assert.Equal(2L, await pg.AdminScalarAsync($"select count(*) from {children}"));

            // An update of parents that inserts into log is not an update of log: tables and operations hold on one table.
            var triggered = await client.QueryAsync($"update {parents} set note = 'x' where id = 2");
            Assert.True(triggered.Rule() == "approval.pending", triggered.Text());
            Assert.Contains("The log is written by people", triggered.Text(), StringComparison.Ordinal);
            Assert.Contains($"and also inserted into public.{log} through its triggers or foreign-key cascades", triggered.Text(), StringComparison.Ordinal);
            Assert.Equal(0L, await pg.AdminScalarAsync($"select count(*) from {log}"));

            // Sent again, it goes back to its request without running (the first call ran it, then dry-ran it for approvers):
            // run again, it might not match and commit beside the request.
            var runs = await pg.AdminScalarAsync($"select last_value from {log}_runs");
            var again = await client.QueryAsync($"update {parents} set note = 'x' where id = 2");
            Assert.True(again.Rule() == "approval.pending", again.Text());
            Assert.Equal(runs, await pg.AdminScalarAsync($"select last_value from {log}_runs"));

            // A write that reaches neither runs.
            var plain = await client.QueryAsync($"delete from {parents} where id = 2");
            Assert.True(plain.IsError != true, plain.Text());
        }
        finally
        {
            await pg.AdminScalarAsync($"drop table {children}, {parents}, {log}");
            await pg.AdminScalarAsync($"drop function {log}_note()");
            await pg.AdminScalarAsync($"drop sequence {log}_runs");
        }
    }

    [Fact]
    public async Task A_request_whose_dry_run_reaches_a_table_under_another_approval_rule_tells_approvers_so()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (parents, log) = ($"asked_parents_{suffix}", $"asked_log_{suffix}");
        await pg.AdminScalarAsync($"create table {parents} (id int primary key)");
        await pg.AdminScalarAsync($"create table {log} (parent_id int)");
        await pg.AdminScalarAsync($"insert into {parents} values (1), (2)");
        await pg.AdminScalarAsync(
            $"create function {log}_note() returns trigger language plpgsql as $$ begin insert into {log} values (old.id); return old; end $$");
        await pg.AdminScalarAsync($"create trigger {log}_note after delete on {parents} for each row execute function {log}_note()");
        await pg.AdminScalarAsync($"grant select, delete on {parents} to \"{pg.GatewayRole}\"");
        await pg.AdminScalarAsync($"grant insert on {log} to \"{pg.GatewayRole}\"");
        try
        {
            var gateway = TestGateway.Create(pg, AgentsAlsoWriting(parents) + $$"""

                  - id: parents-by-hand
                    match: { tables: [public.{{parents}}], operations: [delete] }
                    outcome: require_approval
                    message: Parents are deleted by hand
                  - id: log-by-hand
                    match: { tables: [public.{{log}}] }
                    outcome: require_approval
                    message: The log is written by people
                approvals:
                  approvers: [alice]
                  wait: 0s
                """);
            await using var server = await HttpGateway.StartAsync(gateway);
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));

            // Its plan meets parents-by-hand; its dry run's trigger writes the log, under log-by-hand, which the plan never shows
            // (and which comes second: the plan's own rule does not hide it).
            var pending = await client.QueryAsync($"delete from {parents} where id = 1");
            Assert.True(pending.Rule() == "approval.pending", pending.Text());
            var id = pending.Structured().GetProperty("pending_approval").GetProperty("request_id").GetString()!;
            var request = await server.State.GetStatementAsync(id, DateTimeOffset.UtcNow, CancellationToken.None);
            Assert.Equal("guard.parents-by-hand", request!.Rule);
            Assert.Contains("Parents are deleted by hand. It needs a human's approval (rule 'parents-by-hand'); its dry run also met guard.log-by-hand: The log is written by people", request.Reason, StringComparison.Ordinal);
            Assert.Contains($"and also inserted into public.{log} through its triggers", request.Reason, StringComparison.Ordinal);
            Assert.Contains("its dry run also met guard.log-by-hand", pending.Text(), StringComparison.Ordinal);
            Assert.Equal(0L, await pg.AdminScalarAsync($"select count(*) from {log}"));
        }
        finally
        {
            await pg.AdminScalarAsync($"drop table {parents}, {log}");
            await pg.AdminScalarAsync($"drop function {log}_note()");
        }
    }

    [Fact]
    public async Task Rows_an_update_moves_between_partitions_are_its_own_but_a_triggers_delete_and_insert_there_are_not()
    {
        // PostgreSQL counts a moved row as deleted from one partition and inserted into another, as it counts a trigger's
        // delete and insert: only the statement's own count tells them apart.
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var ledger = $"moved_ledger_{suffix}";
        await pg.AdminScalarAsync($"create table {ledger} (id int, region text, note text) partition by list (region)");
        await pg.AdminScalarAsync($"create table {ledger}_eu partition of {ledger} for values in ('eu')");
        await pg.AdminScalarAsync($"create table {ledger}_us partition of {ledger} for values in ('us')");
        await pg.AdminScalarAsync($"insert into {ledger} values (1, 'eu', ''), (2, 'eu', ''), (3, 'us', '')");
        // On a note 'shift', the trigger moves row 2 by hand: a delete and an insert of its own.
        await pg.AdminScalarAsync(
            $"create function {ledger}_shift() returns trigger language plpgsql as $$ begin if new.note = 'shift' then delete from {ledger} where id = 2; insert into {ledger} values (2, 'us', ''); end if; return new; end $$");
        await pg.AdminScalarAsync($"create trigger {ledger}_shift after update on {ledger}_eu for each row execute function {ledger}_shift()");
        await pg.AdminScalarAsync($"grant select, insert, update on {ledger} to \"{pg.GatewayRole}\"");
        await pg.AdminScalarAsync($"grant delete on {ledger} to \"{pg.GatewayRole}\"");
        try
        {
            var gateway = TestGateway.Create(pg, AgentsAlsoWriting(ledger) + $$"""

                  - id: ledger-kept
                    match: { tables: [public.{{ledger}}], operations: [delete] }
                    outcome: deny
                    message: Ledger rows are never deleted
                """);
            await using var server = await HttpGateway.StartAsync(gateway);
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));

            // Row 1 moves to us, row 3 is updated in place: two rows, one deleted and one inserted by the move.
            var moved = await client.QueryAsync($"update {ledger} set region = 'us', note = 'moved' where id in (1, 3)");
            Assert.True(moved.IsError != true, moved.Text());
            Assert.Equal(2L, await pg.AdminScalarAsync($"select count(*) from {ledger}_us where note = 'moved'"));

            // Row 2 is updated in place and its trigger deletes it and inserts it into us: as many inserted as deleted, as a
            // move would be, but one more row than the statement's own.
            var shifted = await client.QueryAsync($"update {ledger} set note = 'shift' where id = 2");
            Assert.True(shifted.Rule() == "guard.ledger-kept", shifted.Text());
            Assert.Contains($"and also deleted from public.{ledger}_eu through its triggers or foreign-key cascades", shifted.Text(), StringComparison.Ordinal);
            Assert.Equal(1L, await pg.AdminScalarAsync($"select count(*) from {ledger}_eu where id = 2"));

            // A MERGE that inserts and moves: its move cannot be told from an insert and a trigger's delete, so it is refused
            // with the reason, which does not blame a trigger alone.
            var merged = await client.QueryAsync(
                $"merge into {ledger} l using (values (3, 'eu'), (4, 'us')) s(id, region) on l.id = s.id when matched then update set region = s.region when not matched then insert values (s.id, s.region, '')");
            Assert.True(merged.Rule() == "guard.ledger-kept", merged.Text());
            Assert.Contains("or rows it moved between partitions", merged.Text(), StringComparison.Ordinal);
            Assert.Contains("changed the rest, or they are rows it moved between partitions, counted once deleted and once inserted", merged.Text(), StringComparison.Ordinal);
            Assert.Equal(0L, await pg.AdminScalarAsync($"select count(*) from {ledger} where id = 4"));

            // Once a partition is a foreign table, rows changed there would be in the statement's count and no table's, room
            // for a trigger's: no move is credited, even one that never reaches it (pruned, the server is never asked).
            await pg.AdminScalarAsync("create extension if not exists postgres_fdw");
            await pg.AdminScalarAsync($"create server {ledger}_remote foreign data wrapper postgres_fdw options (host '/nonexistent', dbname 'none')");
            await pg.AdminScalarAsync($"create foreign table {ledger}_far partition of {ledger} for values in ('far') server {ledger}_remote");
            var beside = await client.QueryAsync($"update {ledger} set region = 'eu' where id = 1 and region = 'us'");
            Assert.True(beside.Rule() == "guard.ledger-kept", beside.Text());
            Assert.Contains("no partition of its table is a foreign table", beside.Text(), StringComparison.Ordinal);
            Assert.Equal(1L, await pg.AdminScalarAsync($"select count(*) from {ledger}_us where id = 1"));

            // A foreign table two levels down counts as well: the walk goes up through every level to the table.
            await pg.AdminScalarAsync($"drop foreign table {ledger}_far");
            await pg.AdminScalarAsync($"create table {ledger}_asia partition of {ledger} for values in ('asia') partition by list (note)");
            await pg.AdminScalarAsync($"create foreign table {ledger}_asia_far partition of {ledger}_asia for values in ('far') server {ledger}_remote");
            var deeper = await client.QueryAsync($"update {ledger} set region = 'eu' where id = 1 and region = 'us'");
            Assert.True(deeper.Rule() == "guard.ledger-kept", deeper.Text());
            Assert.Contains("no partition of its table is a foreign table", deeper.Text(), StringComparison.Ordinal);

            // Without it, the same move is credited: the refusal was the foreign table's.
            await pg.AdminScalarAsync($"drop foreign table {ledger}_asia_far");
            var credited = await client.QueryAsync($"update {ledger} set region = 'eu' where id = 1 and region = 'us'");
            Assert.True(credited.IsError != true, credited.Text());
            Assert.Equal(1L, await pg.AdminScalarAsync($"select count(*) from {ledger}_eu where id = 1"));
        }
        finally
        {
            await pg.AdminScalarAsync($"drop table {ledger}");
            await pg.AdminScalarAsync($"drop function {ledger}_shift()");
            await pg.AdminScalarAsync($"drop server if exists {ledger}_remote");
            await pg.AdminScalarAsync("drop extension if exists postgres_fdw");
        }
    }

    [Fact]
    public async Task A_write_whose_real_rows_match_an_approval_rule_its_estimate_missed_is_rolled_back_and_sent_for_approval()
    {
        var gateway = TestGateway.Create(pg, Agents + """

              - id: many-orders
                match: { tables: [public.orders], operations: [update], min_rows: 5 }
                outcome: require_approval
                message: Updating many orders needs a person
            approvals:
              approvers: [alice]
              wait: 0s
            """);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var rows = await pg.AdminScalarAsync("select count(*) from orders");

        var held = await client.QueryAsync("update orders set note = 'many' where id % 1 = 0 and (id + 0) % 1 = 0");
        Assert.Equal("approval.pending", held.Rule());
        Assert.Contains("Updating many orders needs a person", held.Text(), StringComparison.Ordinal);
        Assert.Equal(rows, held.Structured().GetProperty("pending_approval").GetProperty("dry_run_affected_rows").GetInt64());
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from orders where note = 'many'"));
    }

    [Fact]
    public async Task A_read_whose_real_rows_match_a_rule_its_estimate_missed_sends_none_of_them()
    {
        var gateway = TestGateway.Create(pg, Agents + """

              - id: bulk-customers
                match: { tables: [public.customers], operations: [read], min_rows: 5 }
                outcome: deny
                message: Customers are read a few at a time
              - id: bulk-orders
                match: { tables: [public.orders], operations: [read], min_rows: 5 }
                outcome: require_approval
                message: Reading many orders needs a person
            approvals:
              approvers: [alice]
              wait: 0s
            """);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
        // Two conditions the planner cannot estimate make a whole-table read look like one row.
        const string Steered = "where id % 1 = 0 and (id + 0) % 1 = 0";

        var denied = await client.QueryAsync($"select country from customers {Steered}");
        Assert.True(denied.Rule() == "guard.bulk-customers", denied.Text());
        Assert.Contains("rows or more, more than the planner estimated, so none of them were sent", denied.Text(), StringComparison.Ordinal);
        Assert.False(denied.Structured().TryGetProperty("rows", out _), denied.Text());
        Assert.Equal(Verdict.Denied, (await server.State.GetAsync(denied.AuditId(), CancellationToken.None))!.Decision);

        var held = await client.QueryAsync($"select id from orders {Steered}");
        Assert.Equal("approval.pending", held.Rule());
        Assert.Contains("Reading many orders needs a person", held.Text(), StringComparison.Ordinal);

        // A read that really returns few rows is answered.
        var few = await client.QueryAsync("select country from customers where id = 1");
        Assert.Equal(1, few.Structured().GetProperty("rows").GetArrayLength());
    }

    [Theory]
    [InlineData("update orders set note = 'ruled' where id = old.id", "guard.uncounted_write", "where PostgreSQL reports no row count")]
    [InlineData("nothing", "database.rejected", "rewrites this statement to nothing")]
    public async Task A_write_a_rule_turns_into_another_kind_or_into_nothing_is_refused_since_postgres_reports_no_rows(string action, string rule, string message)
    {
        // DELETE on the view is done as an UPDATE of orders and reported as DELETE 0: the write limit, min_rows rules and an
        // approval's dry run would all have judged it by that 0. Rewritten to nothing, it has no plan to judge.
        var view = $"orders_ruled_{Guid.NewGuid():N}"[..24];
        await pg.AdminScalarAsync($"create view public.{view} as select * from orders");
        await pg.AdminScalarAsync($"create rule instead as on delete to public.{view} do instead {action}");
        await pg.AdminScalarAsync($"grant select, delete on public.{view} to {pg.GatewayRole}");
        try
        {
            var gateway = TestGateway.Create(pg, Agents);
            await using var server = await HttpGateway.StartAsync(gateway);
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));

            var refused = await client.QueryAsync($"delete from {view} where id % 1 = 0 and (id + 0) % 1 = 0");

            Assert.Equal(rule, refused.Rule());
            Assert.Contains(message, refused.Text(), StringComparison.Ordinal);
            Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from orders where note = 'ruled'"));
        }
        finally
        {
            await pg.AdminScalarAsync($"drop view public.{view}");
        }
    }

    [Theory]
    [InlineData("with u as (update orders set note = 'cte' where id = 2 returning id) select count(*) from u")]
    [InlineData("explain analyze with u as (update orders set note = 'cte' where id = 2 returning id) select count(*) from u")]
    [InlineData("with u as (update orders set note = 'cte' where id = 2 returning id) update orders set note = note where id = 3")]
    public async Task A_write_whose_rows_postgres_does_not_count_is_refused(string sql)
    {
        var gateway = TestGateway.Create(pg, Agents);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var refused = await client.QueryAsync(sql);
        Assert.Equal("guard.uncounted_write", refused.Rule());
        Assert.Contains("send each write as a statement of its own", refused.Text(), StringComparison.Ordinal);
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from orders where note = 'cte'"));
    }

    [Fact]
    public async Task A_write_whose_commit_reply_is_lost_is_reported_as_unconfirmed_not_as_not_run()
    {
        await using var proxy = CommitReplyDropper.Start(pg.GatewayConnectionString);
        var gateway = TestGateway.Create(proxy.ConnectionString, pg.GatewayPassword, Agents);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));

        proxy.LoseNextCommitReply();
        var lost = await client.QueryAsync("update orders set note = 'commit-in-doubt' where id = $1", [5]);
        Assert.Equal(1, proxy.RepliesLost);
        Assert.Equal("database.commit_unconfirmed", lost.Rule());
        Assert.Contains("may or may not have applied it", lost.Text(), StringComparison.Ordinal);
        Assert.DoesNotContain("nothing was run", lost.Text(), StringComparison.Ordinal);

        // It was applied, and the record says what the agent was told.
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from orders where note = 'commit-in-doubt'"));
        var record = Assert.Single(await server.State.ListAsync(new AuditQuery(Agent: "ops-bot", Limit: 10), CancellationToken.None), r => r.Sql?.Contains("commit-in-doubt", StringComparison.Ordinal) == true);
        Assert.Equal("database.commit_unconfirmed", record.Rule);
    }

    [Fact]
    public async Task A_require_approval_rule_holds_the_statement_for_a_human_with_its_message_and_changes_nothing()
    {
        var gateway = TestGateway.Create(pg, Agents + "\napprovals:\n  wait: 0s\n");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var result = await client.QueryAsync("delete from payments where id = $1", [5]);
        Assert.Equal("approval.pending", result.Rule());
        Assert.Contains("Payments are changed by people", result.Text());
        Assert.Contains("approval", result.Text());
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from payments where id = 5"));
        Assert.NotEqual(true, (await client.QueryAsync("select count(*) from payments")).IsError);
    }

    [Theory]
    [InlineData("merge into payments p using (select $1::int as id) s on p.id = s.id when matched then delete")]
    [InlineData("insert into payments (id, order_id, amount, method, status) overriding system value"
        + " select id, order_id, 0, method, status from payments where id = $1 on conflict (id) do update set amount = excluded.amount")]
    public async Task A_merge_or_upsert_that_updates_or_deletes_is_held_by_a_rule_on_updates_and_deletes(string sql)
    {
        var gateway = TestGateway.Create(pg, Agents + "\napprovals:\n  wait: 0s\n");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var amount = await pg.AdminScalarAsync("select amount from payments where id = 6");

        var result = await client.QueryAsync(sql, [6]);
        Assert.Equal("approval.pending", result.Rule());
        Assert.Contains("Payments are changed by people", result.Text());
        Assert.Equal(amount, await pg.AdminScalarAsync("select amount from payments where id = 6"));
    }

    [Fact]
    public async Task Observe_only_runs_what_policy_would_refuse_and_records_the_refusal()
    {
        await pg.AdminScalarAsync("create table if not exists observed_rows (id int primary key)");
        await pg.AdminScalarAsync("insert into observed_rows values (1), (2) on conflict do nothing");
        await pg.AdminScalarAsync($"grant select, insert, update, delete on observed_rows to \"{pg.GatewayRole}\"");
        var gateway = TestGateway.Create(pg, Agents);
        var observing = Observing(gateway);
        await using var server = await HttpGateway.StartAsync(observing);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, observing.Mint("analyst"));

        var delete = await client.QueryAsync("delete from observed_rows where id = 1");
        Assert.NotEqual(true, delete.IsError);
        Assert.Equal(0L, await pg.AdminScalarAsync("select count(*) from observed_rows where id = 1"));
        var record = await server.State.GetAsync(delete.AuditId(), CancellationToken.None);
        Assert.Equal(Verdict.Allowed, record!.Decision);
        Assert.Equal("observe.would_deny", record.Rule);
        Assert.Contains("grant.read_only", record.Reason);

        Assert.Equal("grant.kind_not_allowed", (await client.QueryAsync("drop table observed_rows")).Rule());
        Assert.Equal("sql.multiple_statements", (await client.QueryAsync("select 1; drop table observed_rows")).Rule());
        // A function the gateway cannot vet is refused too: set_config would switch the session to another profile's role.
        var switched = await client.QueryAsync("select set_config('role', 'postgres', true) as r, count(*) from observed_rows");
        Assert.Equal("function.not_allowed", switched.Rule());
        Assert.Contains("set_config", switched.Text());
    }

    [Theory]
    [InlineData(1, "", "guard.large_write: this write touched 3 rows, more than the limit of 1")]
    [InlineData(1000, "  - id: parents-kept\n    match: { tables: [public.PARENTS], operations: [delete] }\n    outcome: deny\n", "guard.parents-kept: guardrail 'parents-kept' matches this statement")]
    public async Task Observe_only_records_a_rule_a_cascade_meets_when_the_write_limit_or_another_rule_would_also_have_refused_the_write(
        int maxWriteRows, string firstRule, string firstNote)
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (parents, children) = ($"observed_parents_{suffix}", $"observed_children_{suffix}");
        await pg.AdminScalarAsync($"create table {parents} (id int primary key)");
        await pg.AdminScalarAsync($"create table {children} (parent_id int not null references {parents} on delete cascade)");
        await pg.AdminScalarAsync($"insert into {parents} values (1), (2)");
        await pg.AdminScalarAsync($"insert into {children} values (1), (1), (2)");
        await pg.AdminScalarAsync($"grant select, delete on {parents} to \"{pg.GatewayRole}\"");
        try
        {
            var rules = ChildrenKept(children) + firstRule.Replace("PARENTS", parents, StringComparison.Ordinal);
            var gateway = TestGateway.Create(pg, AgentsAlsoWriting(parents) + rules, gateway: $"limits:\n  max_write_rows: {maxWriteRows}");
            var observing = Observing(gateway);
            await using var server = await HttpGateway.StartAsync(observing);
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, observing.Mint("ops-bot"));

            // One parent and its two children: a delete from children the plan does not show, after the limit of one row or a
            // rule the plan meets. Enforced, the first refusal is the only one; observed, every rule must be on record.
            var delete = await client.QueryAsync($"delete from {parents} where id = 1");
            Assert.True(delete.IsError != true, delete.Text());
            Assert.Equal(0L, await pg.AdminScalarAsync($"select count(*) from {children} where parent_id = 1"));
            var record = await server.State.GetAsync(delete.AuditId(), CancellationToken.None);
            Assert.Equal("observe.would_deny", record!.Rule);
            Assert.Contains(firstNote, record.Reason, StringComparison.Ordinal);
            Assert.Contains(
                $"guard.children-kept: Children are not deleted (this write touched 3 rows, and also deleted from public.{children} through its triggers or foreign-key cascades, which its plan does not show). Of those rows, the statement itself changed 1; its triggers and foreign-key cascades changed the rest",
                record.Reason,
                StringComparison.Ordinal);
            Assert.DoesNotContain("rolled back", record.Reason, StringComparison.Ordinal);
        }
        finally
        {
            await pg.AdminScalarAsync($"drop table {children}, {parents}");
        }
    }

    [Fact]
    public async Task Observe_only_records_what_the_rows_a_statement_really_touched_or_returned_would_have_refused()
    {
        // Two conditions the planner cannot estimate make three rows look like one: only the rows that ran can match.
        var table = $"observed_bounds_{Guid.NewGuid().ToString("N")[..8]}";
        await pg.AdminScalarAsync($"create table {table} (id int primary key)");
        await pg.AdminScalarAsync($"insert into {table} values (1), (2), (3)");
        await pg.AdminScalarAsync($"analyze {table}");
        await pg.AdminScalarAsync($"grant select, update on {table} to \"{pg.GatewayRole}\"");
        try
        {
            var gateway = TestGateway.Create(pg, AgentsAlsoWriting(table) + $$"""

                  - id: bulk-by-hand
                    match: { tables: [public.{{table}}], min_rows: 2 }
                    outcome: require_approval
                    message: Two rows or more need a human
                  - id: three-refused
                    match: { tables: [public.{{table}}], min_rows: 3 }
                    outcome: deny
                    message: Three rows or more are refused
                """);
            var observing = Observing(gateway);
            await using var server = await HttpGateway.StartAsync(observing);
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, observing.Mint("ops-bot"));
            const string Steered = "where id % 1 = 0 and (id + 0) % 1 = 0";

            var read = await client.QueryAsync($"select id from {table} {Steered}");
            Assert.True(read.IsError != true, read.Text());
            Assert.Equal(3, read.Structured().GetProperty("rows").GetArrayLength());
            var readRecord = await server.State.GetAsync(read.AuditId(), CancellationToken.None);
            Assert.Equal(Verdict.Allowed, readRecord!.Decision);
            Assert.Equal("observe.would_deny", readRecord.Rule);
            // Enforced, the deny rule would have ended the call; observed, the approval rule it hides is on record as well.
            Assert.Contains("guard.three-refused: Three rows or more are refused (this read returned 3 rows or more, more than the planner estimated)", readRecord.Reason, StringComparison.Ordinal);
            Assert.Contains("guard.bulk-by-hand: Two rows or more need a human", readRecord.Reason, StringComparison.Ordinal);

            // A rule its estimate already matched is noted once, not again by the rows.
            var estimated = await client.QueryAsync($"select id from {table}");
            Assert.True(estimated.IsError != true, estimated.Text());
            var estimatedRecord = await server.State.GetAsync(estimated.AuditId(), CancellationToken.None);
            Assert.Equal("observe.would_deny", estimatedRecord!.Rule);
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(estimatedRecord.Reason!, "guard\\.bulk-by-hand"));
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(estimatedRecord.Reason!, "guard\\.three-refused"));

            var write = await client.QueryAsync($"update {table} set id = -id {Steered}");
            Assert.True(write.IsError != true, write.Text());
            Assert.Equal(3L, await pg.AdminScalarAsync($"select count(*) from {table} where id < 0"));
            var writeRecord = await server.State.GetAsync(write.AuditId(), CancellationToken.None);
            Assert.Equal("observe.would_deny", writeRecord!.Rule);
            Assert.Contains("this write touched 3 rows, more than the planner estimated)", writeRecord.Reason, StringComparison.Ordinal);
            Assert.Contains("guard.bulk-by-hand", writeRecord.Reason, StringComparison.Ordinal);
            Assert.DoesNotContain("rolled back", writeRecord.Reason, StringComparison.Ordinal);
        }
        finally
        {
            await pg.AdminScalarAsync($"drop table {table}");
        }
    }
}
