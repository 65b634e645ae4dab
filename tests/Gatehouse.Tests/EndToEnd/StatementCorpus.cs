namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// Statements every read-only MCP database server should refuse, the bypasses that worked on peers and their variants,
/// and benign look-alikes that must pass. Expected is a rule id, or "allowed".
/// </summary>
public static class StatementCorpus
{
    public const string Allowed = "allowed";

    /// <summary>
    /// Refused by the gateway's function vetting or, first, by PostgreSQL's own EXECUTE privileges (EXPLAIN checks them):
    /// the superuser-only functions never reach the vetting when the gateway's role is unprivileged, as it should be.
    /// </summary>
    public const string Refused = "function.not_allowed|database.permission_denied";

    public static TheoryData<string, string, string> Cases() => new()
    {
        // More than one statement, however it is hidden.
        { "analyst", "select 1; drop table customers", "sql.multiple_statements" },
        { "analyst", "COMMIT; DROP TABLE customers", "sql.multiple_statements" },
        { "analyst", "commit; copy customers to program 'id'", "sql.multiple_statements" },
        { "analyst", "rollback; delete from orders", "sql.multiple_statements" },
        { "analyst", "end; drop table orders", "sql.multiple_statements" },
        { "analyst", "select 1;/* c */delete from orders", "sql.multiple_statements" },
        { "analyst", "select 1 -- c\n; delete from orders", "sql.multiple_statements" },
        { "analyst", "select $$x$$; drop table orders", "sql.multiple_statements" },
        { "analyst", "select 'a';select 'b'", "sql.multiple_statements" },
        { "analyst", "select \"x;y\" from (select 1 as \"x;y\") t; truncate orders", "sql.multiple_statements" },
        { "analyst", "select 'unterminated; drop table orders", "sql.unreadable" },
        { "analyst", "select 1 /* open comment; drop table orders", "sql.unreadable" },

        // Transaction control and session commands.
        { "analyst", "commit", "grant.kind_not_allowed" },
        { "analyst", "rollback", "grant.kind_not_allowed" },
        { "analyst", "begin", "grant.kind_not_allowed" },
        { "analyst", "start transaction read write", "grant.kind_not_allowed" },
        { "analyst", "savepoint a", "grant.kind_not_allowed" },
        { "analyst", "abort", "grant.kind_not_allowed" },
        { "analyst", "prepare transaction 'x'", "grant.kind_not_allowed" },
        { "analyst", "set role postgres", "grant.kind_not_allowed" },
        { "analyst", "set session authorization postgres", "grant.kind_not_allowed" },
        { "analyst", "set local role postgres", "grant.kind_not_allowed" },
        { "analyst", "reset all", "grant.kind_not_allowed" },
        { "analyst", "set search_path = pg_catalog", "grant.kind_not_allowed" },
        { "analyst", "set statement_timeout = 0", "grant.kind_not_allowed" },
        { "analyst", "discard all", "grant.kind_not_allowed" },

        // DDL and DCL, with comment, case and whitespace obfuscation.
        { "analyst", "drop table orders", "grant.kind_not_allowed" },
        { "analyst", "/* x */ drop table orders", "grant.kind_not_allowed" },
        { "analyst", "-- hi\n  DrOp TaBlE orders", "grant.kind_not_allowed" },
        { "analyst", "/* a /* nested */ b */ truncate orders", "grant.kind_not_allowed" },
        { "analyst", "alter table orders add column pwned int", "grant.kind_not_allowed" },
        { "analyst", "create table pwned (a int)", "grant.kind_not_allowed" },
        { "analyst", "create table pwned as select * from customers", "grant.kind_not_allowed" },
        { "analyst", "select * into pwned from customers", "grant.kind_not_allowed" },
        { "analyst", "with c as (select * from customers) select * into pwned from c", "grant.kind_not_allowed" },
        { "analyst", "create function pwned() returns int language sql as 'select 1'", "grant.kind_not_allowed" },
        { "analyst", "create extension dblink", "grant.kind_not_allowed" },
        { "analyst", "comment on table orders is 'pwned'", "grant.kind_not_allowed" },
        { "analyst", "create index on orders (total)", "grant.kind_not_allowed" },
        { "analyst", "create role pwned superuser", "grant.kind_not_allowed" },
        { "analyst", "alter system set fsync = off", "grant.kind_not_allowed" },
        { "analyst", "grant all on customers to public", "grant.kind_not_allowed" },
        { "analyst", "revoke select on orders from public", "grant.kind_not_allowed" },
        { "analyst", "reassign owned by current_user to postgres", "grant.kind_not_allowed" },

        // COPY, DO, CALL, PREPARE/EXECUTE, LISTEN/NOTIFY, LOCK, maintenance, cursors, LOAD.
        { "analyst", "copy customers to '/tmp/gatehouse_leak'", "grant.kind_not_allowed" },
        { "analyst", "copy customers to program 'id > /tmp/gatehouse_leak'", "grant.kind_not_allowed" },
        { "analyst", "copy orders from '/etc/passwd'", "grant.kind_not_allowed" },
        { "analyst", "copy (select * from customers) to stdout", "grant.kind_not_allowed" },
        { "analyst", "do $$ begin delete from orders; end $$", "grant.kind_not_allowed" },
        { "analyst", "DO 'begin perform 1; end'", "grant.kind_not_allowed" },
        { "analyst", "call pwned()", "grant.kind_not_allowed" },
        { "analyst", "prepare p as delete from orders", "grant.kind_not_allowed" },
        { "analyst", "execute p", "grant.kind_not_allowed" },
        { "analyst", "deallocate all", "grant.kind_not_allowed" },
        { "analyst", "listen ch", "grant.kind_not_allowed" },
        { "analyst", "notify ch, 'x'", "grant.kind_not_allowed" },
        { "analyst", "lock table orders in access exclusive mode", "grant.kind_not_allowed" },
        { "analyst", "vacuum full orders", "grant.kind_not_allowed" },
        { "analyst", "analyze orders", "grant.kind_not_allowed" },
        { "analyst", "cluster orders", "grant.kind_not_allowed" },
        { "analyst", "reindex table orders", "grant.kind_not_allowed" },
        { "analyst", "checkpoint", "grant.kind_not_allowed" },
        { "analyst", "declare c cursor with hold for select * from customers", "grant.kind_not_allowed" },
        { "analyst", "load 'plpgsql'", "grant.kind_not_allowed" },
        { "analyst", "explain analyze delete from orders", "grant.kind_not_allowed" },
        { "analyst", "explain (analyze, format json) update orders set total = 0 where id = 1", "grant.kind_not_allowed" },

        // Writes under a read grant, plain and hidden in CTEs.
        { "analyst", "delete from orders where id = 1", "grant.read_only" },
        { "analyst", "/* harmless */ UPDATE customers SET ssn = NULL WHERE id = 1", "grant.read_only" },
        { "analyst", "insert into orders (customer_id, status, total) values (1, 'paid', 1)", "grant.read_only" },
        { "analyst", "merge into orders o using (select 1 as id) s on o.id = s.id when matched then delete", "grant.read_only" },
        { "analyst", "with x as (select 1) delete from orders where id = 1", "grant.read_only" },
        { "analyst", "with d as (delete from orders where id = 1 returning *) select * from d", "grant.relation_read_only" },
        { "analyst", "with i as (insert into payments (order_id, amount, method, status) values (1, 1, 'card', 'captured') returning id) select * from i", "grant.relation_read_only" },
        { "analyst", "with u as (update customers set email = 'x' where id = 1 returning 1) select * from u", "database.permission_denied" },

        // Functions that read files, run SQL strings, touch large objects, settings, sequences, locks or other sessions.
        { "analyst", "select pg_read_file('/etc/passwd')", Refused },
        { "analyst", "select * from pg_read_file('/etc/passwd')", Refused },
        { "analyst", "SELECT PG_READ_FILE('/etc/passwd')", Refused },
        { "analyst", "select \"pg_read_file\"('/etc/passwd')", Refused },
        { "analyst", "select pg_catalog.pg_read_file('/etc/passwd')", Refused },
        { "analyst", "select * from pg_ls_dir('.')", Refused },
        { "analyst", "select pg_stat_file('/etc/passwd')", Refused },
        { "analyst", "select upper(full_name) from customers where length(pg_read_file('/etc/passwd')) > 0", Refused },
        { "analyst", "select query_to_xml('select * from customers', true, true, '')", "function.not_allowed" },
        { "analyst", "select table_to_xml('customers', true, true, '')", "function.not_allowed" },
        { "analyst", "select ts_stat('select 1')", "function.not_allowed" },
        { "analyst", "select lo_import('/etc/passwd')", Refused },
        { "analyst", "select lo_export(1, '/tmp/gatehouse_leak')", Refused },
        { "analyst", "select set_config('role', 'postgres', false)", "function.not_allowed" },
        { "analyst", "with x as (select set_config('search_path', 'pg_catalog', false)) select * from x", "function.not_allowed" },
        { "analyst", "select nextval('invoice_seq')", "function.not_allowed" },
        { "analyst", "select setval('invoice_seq', 1)", "function.not_allowed" },
        { "analyst", "select * from customers where id = (select nextval('invoice_seq'))", "function.not_allowed" },
        { "analyst", "select pg_advisory_lock(42)", "function.not_allowed" },
        { "analyst", "select pg_terminate_backend(pg_backend_pid())", Refused },
        { "analyst", "select pg_cancel_backend(1)", Refused },
        { "analyst", "select query from pg_stat_activity", "function.not_allowed" },
        { "analyst", "select pg_stat_get_backend_activity(1)", "function.not_allowed" },
        { "analyst", "select pg_reload_conf()", Refused },
        { "analyst", "select pg_notify('ch', 'x')", "function.not_allowed" },
        { "analyst", "select pg_sleep(10)", "function.not_allowed" },
        { "analyst", "select setseed(0.5)", "function.not_allowed" },
        { "analyst", "select dblink('host=evil', 'select 1')", "database.rejected" },

        // Relations outside the grant.
        { "analyst", "select * from pg_catalog.pg_class limit 1", "grant.relation_not_granted" },
        { "analyst", "select * from information_schema.tables", "grant.relation_not_granted" },
        { "analyst", "select * from pg_authid", "database.permission_denied" },
        { "analyst", "select * from orders for update", "database.rejected" },

        // Guards under a write grant.
        { "ops-bot", "update orders set note = 'x'", "guard.unbounded_write" },
        { "ops-bot", "delete from orders", "guard.unbounded_write" },
        { "ops-bot", "with d as (delete from orders returning 1) select count(*) from d", "guard.unbounded_write" },
        { "ops-bot", "with u as (update orders set note = 'x' returning id) select count(*) from u", "guard.unbounded_write" },
        { "ops-bot", "delete from payments where id = 1", "grant.relation_read_only" },
        { "ops-bot", "update orders set note = setval('invoice_seq', 1)::text where id = 1", "function.not_allowed" },
        { "ops-bot", "insert into payments (order_id, amount, method, status) values (1, 1, 'card', 'captured')", "grant.relation_read_only" },
        { "ops-bot", "insert into customers (full_name, email, country) values ('x', 'y', 'US')", "database.permission_denied" },
        { "ops-bot", "with d as (delete from payments where id = 2 returning *) update orders set note = 'x' where id = 1", "grant.relation_read_only" },
        { "ops-bot", "update orders set note = pg_read_file('/etc/passwd') where id = 1", Refused },

        // Benign statements that look alarming, and everyday analytics, must pass.
        { "analyst", "select 'drop table orders' as s", Allowed },
        { "analyst", "select 'a;b' as s", Allowed },
        { "analyst", "select count(*) from orders -- delete from orders", Allowed },
        { "analyst", "/* delete from orders; */ select 1", Allowed },
        { "analyst", "select $$ ; delete from orders $$", Allowed },
        { "analyst", "select E'it\\'s; fine'", Allowed },
        { "analyst", "with x as (select id from orders) select count(*) from x", Allowed },
        { "analyst", "with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select sum(n) from r", Allowed },
        { "analyst", "select id, total, rank() over (order by total desc) from orders limit 5", Allowed },
        { "analyst", "select json_agg(o) from (select id, status from orders limit 3) o", Allowed },
        { "analyst", "select jsonb_build_object('id', id, 'email', email) from customers limit 1", Allowed },
        { "analyst", "select row_to_json(c) from customers c limit 1", Allowed },
        { "analyst", "explain select * from orders", Allowed },
        { "analyst", "explain (costs off) select count(*) from orders", Allowed },
        { "analyst", "select now(), random(), gen_random_uuid()", Allowed },
        { "analyst", "values (1), (2)", Allowed },
        { "analyst", "table orders", Allowed },
        { "analyst", "select c.country, sum(o.total) from customers c join orders o on o.customer_id = c.id group by 1 order by 2 desc", Allowed },
        { "analyst", "select coalesce(note, 'none'), greatest(1, 2), least(3, 4), nullif(1, 1) from orders limit 2", Allowed },
        { "analyst", "select extract(year from created_at), to_char(created_at, 'YYYY-MM') from orders limit 1", Allowed },
        { "analyst", "select string_agg(email, ',' order by id) from customers", Allowed },
        { "analyst", "select lower(email) from customers where id in (select customer_id from orders where status = 'paid')", Allowed },
        { "analyst", "select exists (select 1 from orders where total > 100)", Allowed },
        { "analyst", "select cast(total as int), trim(full_name) from orders join customers on customers.id = orders.customer_id limit 1", Allowed },
        { "analyst", "select regexp_replace(email, '@.*', '') from customers limit 1", Allowed },
        { "analyst", "select case when total > 100 then 'big' else 'small' end from orders limit 3", Allowed },
        { "analyst", "select substring(email from 1 for 3), position('a' in full_name) from customers limit 1", Allowed },
        { "analyst", "(select id from orders limit 1) union all (select id from payments limit 1)", Allowed },
        { "analyst", "select count(*) filter (where status = 'paid'), percentile_cont(0.5) within group (order by total) from orders", Allowed },
        { "analyst", "select email::varchar(20), total::numeric(8,1), orders.created_at::timestamp(0) from customers join orders on orders.customer_id = customers.id limit 1", Allowed },
    };
}
