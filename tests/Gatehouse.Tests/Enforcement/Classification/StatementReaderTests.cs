using Gatehouse.Enforcement.Classification;

namespace Gatehouse.Tests.Enforcement.Classification;

public sealed class StatementReaderTests
{
    [Theory]
    [InlineData("select 1; drop table orders", 2)]
    [InlineData("COMMIT; DROP TABLE orders", 2)]
    [InlineData("select ';' as semi", 1)]
    [InlineData("select 1 -- ; drop table orders", 1)]
    [InlineData("select /* ; */ 1", 1)]
    [InlineData("select /* outer /* inner ; */ still comment ; */ 1", 1)]
    [InlineData("select E'it\\'s; here' as x", 1)]
    [InlineData("select $$ ; drop table x; $$", 1)]
    [InlineData("select $fn$ a $$ ; $$ b $fn$", 1)]
    [InlineData("select \"weird;name\" from t", 1)]
    [InlineData("select U&'d;ata' as t", 1)]
    [InlineData("select 1 -- comment ends at a carriage return\r; drop table t", 2)]
    [InlineData("select 1 \u00A0$$; drop table t; \u00A0$$", 3)]
    [InlineData("select E'a'\n'\\''; drop table t; -- '", 2)]
    [InlineData("select E'a' -- not yet\n  -- still not\n'\\'; b' as x", 1)]
    [InlineData("select E'a' '\\'; select 1", 2)]
    [InlineData("select 1;", 1)]
    [InlineData(";;select 1;;", 1)]
    [InlineData("select 'a''; b'", 1)]
    [InlineData("select 1; select 2; select 3", 3)]
    [InlineData("-- only a comment", 0)]
    [InlineData("/* nothing */ ;", 0)]
    public void Statement_boundaries_are_found_where_PostgreSQL_finds_them(string sql, int expected) =>
        Assert.Equal(expected, StatementReader.Read(sql).Count);

    [Theory]
    [InlineData("select * from orders", StatementKind.Select, "SELECT")]
    [InlineData("  (select 1) union (select 2)", StatementKind.Select, "SELECT")]
    [InlineData("/* x */ UPDATE orders SET total = 0", StatementKind.Update, "UPDATE")]
    [InlineData("-- hi\n delete from orders", StatementKind.Delete, "DELETE")]
    [InlineData("InSeRt into orders values (1)", StatementKind.Insert, "INSERT")]
    [InlineData("merge into t using s on true when matched then delete", StatementKind.Merge, "MERGE")]
    [InlineData("with d as (delete from orders returning *) select * from d", StatementKind.Select, "WITH SELECT")]
    [InlineData("with x as (select 1) delete from orders", StatementKind.Delete, "WITH DELETE")]
    [InlineData("with insert as (select 1) select * from insert", StatementKind.Select, "WITH SELECT")]
    [InlineData("select * into stolen from customers", StatementKind.Ddl, "SELECT INTO")]
    [InlineData("drop table orders", StatementKind.Ddl, "DROP")]
    [InlineData("truncate orders", StatementKind.Ddl, "TRUNCATE")]
    [InlineData("grant all on orders to public", StatementKind.Dcl, "GRANT")]
    [InlineData("commit", StatementKind.Transaction, "COMMIT")]
    [InlineData("begin", StatementKind.Transaction, "BEGIN")]
    [InlineData("set role postgres", StatementKind.Session, "SET")]
    [InlineData("reset all", StatementKind.Session, "RESET")]
    [InlineData("copy orders to program 'id'", StatementKind.Copy, "COPY")]
    [InlineData("do $$ begin perform 1; end $$", StatementKind.Do, "DO")]
    [InlineData("call p()", StatementKind.Call, "CALL")]
    [InlineData("explain analyze delete from orders", StatementKind.Explain, "EXPLAIN")]
    [InlineData("prepare p as select 1", StatementKind.Prepared, "PREPARE")]
    [InlineData("notify ch", StatementKind.Notify, "NOTIFY")]
    [InlineData("lock table orders", StatementKind.Lock, "LOCK")]
    [InlineData("vacuum full", StatementKind.Maintenance, "VACUUM")]
    [InlineData("frobnicate the database", StatementKind.Unknown, "FROBNICATE")]
    [InlineData("'just a string'", StatementKind.Unknown, "'just a string'")]
    public void The_kind_comes_from_the_leading_keywords(string sql, StatementKind kind, string keyword)
    {
        var statement = Assert.Single(StatementReader.Read(sql));
        Assert.Equal(kind, statement.Kind);
        Assert.Equal(keyword, statement.Keyword);
    }

    [Theory]
    [InlineData("explain select * from orders", false, StatementKind.Select)]
    [InlineData("explain (analyze, buffers) select 1", true, StatementKind.Select)]
    [InlineData("EXPLAIN ANALYZE VERBOSE delete from orders", true, StatementKind.Delete)]
    [InlineData("explain verbose with d as (delete from t returning *) select * from d", false, StatementKind.Select)]
    public void Explain_carries_the_statement_it_explains(string sql, bool analyze, StatementKind inner)
    {
        var statement = Assert.Single(StatementReader.Read(sql));
        Assert.Equal(StatementKind.Explain, statement.Kind);
        Assert.Equal(analyze, statement.Analyze);
        Assert.Equal(inner, statement.Inner!.Kind);
    }

    [Theory]
    [InlineData("explain explain select 1")]
    [InlineData("explain verbose explain select 1")]
    [InlineData("explain analyze (((explain analyze delete from orders)))")]
    public void An_explained_explain_is_not_read_further(string sql)
    {
        // PostgreSQL has no such statement; read level by level, a few thousand EXPLAIN words took the stack.
        var statement = Assert.Single(StatementReader.Read(sql));
        Assert.Equal(StatementKind.Explain, statement.Kind);
        Assert.Equal(StatementKind.Unknown, statement.Inner!.Kind);
        Assert.Equal("EXPLAIN", statement.Inner.Keyword);
        Assert.Null(statement.Inner.Inner);
    }

    [Fact]
    public void A_statement_of_thousands_of_explains_is_read_in_one_step()
    {
        var sql = string.Concat(Enumerable.Repeat("EXPLAIN ", 8_191)) + "SELECT 1";

        var statement = Assert.Single(StatementReader.Read(sql));

        Assert.Equal(StatementKind.Unknown, statement.Inner!.Kind);
        Assert.Equal(sql.Length - "EXPLAIN ".Length, statement.Inner.Sql.Length);
    }

    [Theory]
    [InlineData("delete from orders", false)]
    [InlineData("delete from orders where id = 1", true)]
    [InlineData("update orders set note = 'where' ", false)]
    [InlineData("with x as (select * from t where a = 1) delete from orders", false)]
    [InlineData("update orders set total = (select max(total) from orders where id = 2)", false)]
    [InlineData("update orders set total = 0 where id in (select id from orders)", true)]
    public void Update_and_delete_know_whether_they_have_their_own_where(string sql, bool hasWhere) =>
        Assert.Equal(hasWhere, Assert.Single(StatementReader.Read(sql)).HasWhere);

    [Theory]
    [InlineData("with d as (delete from orders returning 1) select count(*) from d", "DELETE")]
    [InlineData("WITH u AS MATERIALIZED (UPDATE orders SET note = 'x' RETURNING id) SELECT * FROM u", "UPDATE")]
    [InlineData("with a as (select 1), d as (delete from orders where id = (select 1) returning 1) select * from d", null)]
    [InlineData("with d as (delete from orders where id in (select id from orders) returning 1) select * from d", null)]
    [InlineData("with d as (delete from payments where id = 2 returning *), u as (update orders set note = 'x' returning 1) select 1", "UPDATE")]
    [InlineData("select * from orders for update", null)]
    [InlineData("insert into orders (id) values (1) on conflict (id) do update set note = 'x'", null)]
    [InlineData("update orders set note = 'x'", null)]
    [InlineData("with a as (update orders set note = (select 1 from (delete from payments returning 1) q) where id = 1) select 1", "DELETE")]
    [InlineData("with a as (delete from orders where id in (select id from (update payments set amount = 1 where id = 2 returning id) q)) select 1", null)]
    [InlineData("with a as (delete from orders where id = 1), b as (delete from (payments", "DELETE")]
    public void A_with_query_that_writes_knows_whether_it_has_its_own_where(string sql, string? unbounded) =>
        Assert.Equal(unbounded, Assert.Single(StatementReader.Read(sql)).UnboundedWithWrite);

    [Theory]
    [InlineData("merge into orders t using s on t.id = s.id when not matched by source then delete", "DELETE")]
    [InlineData("MERGE INTO orders t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING WHEN NOT MATCHED BY SOURCE THEN UPDATE SET note = 'x'", "UPDATE")]
    [InlineData("merge into orders t using s on t.id = s.id when not matched by source and t.status = 'pending' then delete", null)]
    [InlineData("merge into orders t using s on t.id = s.id when not matched by source then do nothing", null)]
    [InlineData("merge into orders t using s on t.id = s.id when not matched by target then insert (id) values (s.id)", null)]
    [InlineData("merge into orders t using (select 1 as id where 'when not matched by source then delete' = '') s on t.id = s.id when matched then delete", null)]
    [InlineData("merge into orders t using (select id from x where (not matched by source then delete)) s on true when matched then delete", null)]
    public void A_merge_that_updates_or_deletes_every_row_its_source_does_not_name_is_unbounded(string sql, string? unbounded)
    {
        var statement = Assert.Single(StatementReader.Read(sql));
        Assert.Equal(unbounded, statement.UnboundedMergeAction);
        Assert.Equal(unbounded is not null, statement.WritesWithoutWhere);
    }

    [Fact]
    public void A_run_of_signs_is_cut_where_the_server_cuts_it_and_each_sign_cut_off_is_an_operator_of_its_own()
    {
        const string Sql = "select 1 *+-+- 2 <=+ 3 @+- 4";
        Assert.Equal(
            ["*", "+", "-", "+", "-", "<=", "+", "@+-"],
            SqlLexer.Tokenize(Sql).Where(t => t.Kind == SqlTokenKind.Operator).Select(t => t.Text(Sql)));

        // 64 KB of signs (the default max_sql_length) reads the same way, one token per sign.
        var signs = "select 1 " + string.Concat(Enumerable.Repeat("+-", 32_768)) + " 2";
        Assert.Equal(65_536, SqlLexer.Tokenize(signs).Count(t => t.Kind == SqlTokenKind.Operator));
    }

    [Fact]
    public void A_single_statement_keeps_its_text_without_the_trailing_semicolon()
    {
        var statement = Assert.Single(StatementReader.Read("  select 1 as x ;  -- done"));
        Assert.Equal("select 1 as x", statement.Sql);
    }

    [Theory]
    [InlineData("select 'unterminated", "never closed")]
    [InlineData("select \"unterminated", "never closed")]
    [InlineData("select /* unterminated", "never closed")]
    [InlineData("select $tag$ unterminated", "never closed")]
    [InlineData("select E'ends with backslash\\'", "never closed")]
    [InlineData("select 1\0; drop table t", "NUL")]
    [InlineData("select U&\"\\0070eek\"('a')", "Unicode-escaped identifier")]
    // EXPLAIN prints an EXTRACT unit as written: one holding a quote could hide what follows it in the plan's text.
    [InlineData("select extract('''' from now())", "has the unit '''', which is not a plain word")]
    [InlineData("select EXTRACT('year FROM id''' from now()) from t", "which is not a plain word")]
    [InlineData("select extract(\"year FROM id'\" from now()) from t", "which is not a plain word")]
    [InlineData("select extract(E'year' from now())", "which is not a plain word")]
    [InlineData("select extract($$year$$ from now())", "which is not a plain word")]
    // One unit to PostgreSQL, two strings to a lexer: 'year' passed, and the plan printed EXTRACT(year FROM id' FROM now()).
    [InlineData("select extract('year'\n' FROM id''' from now())", "which is not a plain word")]
    [InlineData("select * from t, xmltable(xmlnamespaces('http://x' as \"it's\"), '/r' passing t.x columns a int path 'a')", "holds a quote")]
    [InlineData("select json_value(t.j, '$' passing 1 as \"a\"\"b\") from t", "holds a quote")]
    public void Unreadable_input_is_a_clear_error(string sql, string message)
    {
        var error = Assert.Throws<SqlLexException>(() => StatementReader.Read(sql));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("select extract(year from now())")]
    [InlineData("select extract('epoch' from d), extract(\"day\" from d), Extract(iso_year from d) from t")]
    [InlineData("select pg_catalog.extract_year(1)")]
    [InlineData("select pg_catalog.extract('year', now())")]
    [InlineData("select count(*) as \"Today's orders\", max(\"Driver's licence\") from t")]
    public void An_extract_whose_unit_is_a_plain_word_is_read(string sql) =>
        Assert.Equal(StatementKind.Select, Assert.Single(StatementReader.Read(sql)).Kind);

    [Theory]
    [InlineData("select 1 =-1", "=")]
    [InlineData("select a <>-1", "<>")]
    [InlineData("select a @- b", "@-")]
    [InlineData("select a <=> b", "<=>")]
    [InlineData("select a +++ b", "+")]
    public void Operators_are_split_as_PostgreSQL_splits_them(string sql, string first) =>
        Assert.Equal(first, SqlLexer.Tokenize(sql).First(t => t.Kind == SqlTokenKind.Operator).Text(sql));

    [Fact]
    public void Only_ASCII_letters_fold_so_names_PostgreSQL_tells_apart_are_never_cached_as_one()
    {
        Assert.Equal(StatementReader.Read("SELECT Peek(X)")[0].Normalized, StatementReader.Read("select peek(x)")[0].Normalized);
        Assert.NotEqual(StatementReader.Read("select \u00C4peek(x)")[0].Normalized, StatementReader.Read("select \u00E4peek(x)")[0].Normalized);
    }

    [Fact]
    public void Absurdly_nested_comments_are_refused_not_followed()
    {
        var sql = "select " + string.Concat(Enumerable.Repeat("/*", 10_000)) + string.Concat(Enumerable.Repeat("*/", 10_000)) + " 1";
        var error = Assert.Throws<SqlLexException>(() => StatementReader.Read(sql));
        Assert.Contains("nested", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Random_input_never_crashes_or_hangs_the_lexer()
    {
        const string alphabet = "sel ct;'\"$/*-\n\\EeUu&()1x_";
        var random = new Random(20261124);
        for (var i = 0; i < 5_000; i++)
        {
            var chars = new char[random.Next(0, 200)];
            for (var j = 0; j < chars.Length; j++)
            {
                chars[j] = alphabet[random.Next(alphabet.Length)];
            }

            var sql = new string(chars);
            try
            {
                var statements = StatementReader.Read(sql);
                Assert.All(statements, s => Assert.False(string.IsNullOrWhiteSpace(s.Sql)));
            }
            catch (SqlLexException e)
            {
                Assert.InRange(e.Position, 0, sql.Length);
            }
        }
    }
}
