using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Classification;

public sealed class PlanReaderTests
{
    // The shape PostgreSQL 15 prints for: WITH d AS (DELETE FROM public.orders RETURNING *) SELECT c.id FROM customers c, pg_ls_dir('.') f
    private const string WritableCtePlan = """
        [{"Plan": {"Node Type": "Nested Loop", "Plan Rows": 42, "Total Cost": 12.5, "Output": ["c.id"], "Plans": [
          {"Node Type": "ModifyTable", "Operation": "Delete", "Parent Relationship": "InitPlan", "Subplan Name": "CTE d",
           "Relation Name": "orders", "Schema": "public", "Alias": "orders", "Plans": [
             {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "orders", "Output": ["orders.ctid"]}]},
          {"Node Type": "Seq Scan", "Relation Name": "customers", "Schema": "public", "Alias": "c", "Output": ["c.id"]},
          {"Node Type": "Function Scan", "Function Name": "pg_ls_dir", "Schema": "pg_catalog", "Alias": "f", "Function Call": "pg_ls_dir('.'::text)",
           "Filter": "(upper(f.f) <> 'x('::text)"}]}}]
        """;

    [Fact]
    public void A_delete_inside_a_cte_is_a_write_to_its_table()
    {
        var facts = PlanReader.Read(WritableCtePlan);
        Assert.True(facts.Writes);
        Assert.Contains(new RelationAccess(new RelationName("public", "orders"), AccessLevel.Write, "delete"), facts.Relations);
        Assert.Contains(new RelationAccess(new RelationName("public", "customers"), AccessLevel.Read, "read"), facts.Relations);
    }

    [Fact]
    public void An_insert_that_updates_on_conflict_is_an_update_of_its_table_too()
    {
        // PostgreSQL 15 for: INSERT INTO mt VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET v = excluded.v
        const string upsert = """
            [{"Plan": {"Node Type": "ModifyTable", "Operation": "Insert", "Relation Name": "mt", "Schema": "public", "Alias": "mt", "Plan Rows": 0,
              "Total Cost": 0.01, "Conflict Resolution": "UPDATE", "Conflict Arbiter Indexes": ["mt_pkey"], "Plans": [
                {"Node Type": "Result", "Parent Relationship": "Outer", "Plan Rows": 1, "Output": ["1", "1"]}]}}]
            """;
        var table = new RelationName("public", "mt");
        Assert.Contains(new RelationAccess(table, AccessLevel.Write, "update"), PlanReader.Read(upsert).Relations);
        Assert.Equal(1, PlanReader.Read(upsert).Writers);
        Assert.DoesNotContain(
            new RelationAccess(table, AccessLevel.Write, "update"),
            PlanReader.Read(upsert.Replace("\"UPDATE\"", "\"NOTHING\"", StringComparison.Ordinal)).Relations);
    }

    [Fact]
    public void A_foreign_scan_that_aggregates_remotely_is_refused_as_its_tables_are_named_only_in_words()
    {
        // PostgreSQL 15 with postgres_fdw, for: SELECT string_agg(v, ',') FROM f_secret (a foreign table).
        const string pushedDown = """
            [{"Plan": {"Node Type": "Foreign Scan", "Operation": "Select", "Plan Rows": 1, "Total Cost": 128.31,
              "Output": ["(string_agg(v, ','::text))"], "Relations": "Aggregate on (public.f_secret)",
              "Remote SQL": "SELECT string_agg(v, ','::text) FROM public.secret"}}]
            """;
        var refused = Assert.Throws<Gatehouse.Enforcement.Execution.DatabaseException>(() => PlanReader.Read(pushedDown));
        Assert.Contains("Aggregate on (public.f_secret)", refused.Message, StringComparison.Ordinal);

        // Scanned as a table of its own, a foreign table is named like any other.
        const string plain = """
            [{"Plan": {"Node Type": "Foreign Scan", "Operation": "Select", "Relation Name": "f_secret", "Schema": "public", "Alias": "f_secret",
              "Plan Rows": 1, "Total Cost": 100, "Output": ["v"], "Remote SQL": "SELECT v FROM public.secret"}}]
            """;
        Assert.Contains(new RelationAccess(new RelationName("public", "f_secret"), AccessLevel.Read, "read"), PlanReader.Read(plain).Relations);
    }

    [Fact]
    public void A_foreign_or_custom_scan_that_names_no_table_and_has_no_plans_under_it_is_refused()
    {
        // An FDW other than postgres_fdw pushing a join down, or an extension's distributed scan: no "Relations" to say so.
        foreach (var nodeType in new[] { "Foreign Scan", "Custom Scan" })
        {
            var plan = "[{\"Plan\": {\"Node Type\": \"" + nodeType + "\", \"Plan Rows\": 1, \"Total Cost\": 10, \"Output\": [\"a.id\", \"b.secret\"]}}]";
            var refused = Assert.Throws<Gatehouse.Enforcement.Execution.DatabaseException>(() => PlanReader.Read(plan));
            Assert.Contains($"a {nodeType} that names no table", refused.Message, StringComparison.Ordinal);
        }

        // A custom scan that names no table but has plans under it is read through them.
        const string appended = """
            [{"Plan": {"Node Type": "Custom Scan", "Custom Plan Provider": "ChunkAppend", "Plan Rows": 1, "Total Cost": 10, "Output": ["v"],
              "Plans": [{"Node Type": "Seq Scan", "Relation Name": "chunk_1", "Schema": "_timescaledb_internal", "Alias": "chunk_1", "Plan Rows": 1, "Total Cost": 1, "Output": ["v"]}]}}]
            """;
        Assert.Contains(new RelationAccess(new RelationName("_timescaledb_internal", "chunk_1"), AccessLevel.Read, "read"), PlanReader.Read(appended).Relations);
    }

    [Theory]
    [InlineData("EXTRACT(year FROM now())", null)]
    [InlineData("EXTRACT(epoch FROM (c.created_at - c.updated_at))", null)]
    [InlineData("concat(CASE WHEN (id < 0) THEN EXTRACT(' FROM now()) ELSE NULL::numeric END, ssn, EXTRACT(' FROM now()))", "'''")]
    [InlineData("EXTRACT(day hour FROM now())", "'day hour'")]
    [InlineData("'EXTRACT('::text", "''::text'")]
    public void An_extract_whose_unit_is_not_a_plain_word_is_found(string expression, string? unit) =>
        Assert.Equal(unit, PlanReader.UnreadableExtractUnit(expression));

    [Fact]
    public void A_plan_that_left_partitions_out_as_it_started_is_refused()
    {
        // PostgreSQL 15 for a condition on the partition key by a stable expression, with pruning on.
        const string pruned = """[{"Plan": {"Node Type": "Append", "Plan Rows": 566, "Total Cost": 52.58, "Subplans Removed": 2}}]""";
        Assert.True(PlanReader.LeftPartitionsOut(pruned));
        Assert.False(PlanReader.LeftPartitionsOut(pruned.Replace("\"Subplans Removed\": 2", "\"Subplans Removed\": 0", StringComparison.Ordinal)));
        var refused = Assert.Throws<Gatehouse.Enforcement.Execution.DatabaseException>(() => PlanReader.Read(pruned));
        Assert.Contains("left partitions out", refused.Message, StringComparison.Ordinal);
        Assert.Empty(PlanReader.Read(pruned.Replace("\"Subplans Removed\": 2", "\"Subplans Removed\": 0", StringComparison.Ordinal)).Relations);
    }

    [Fact]
    public void Every_plan_a_rewrite_rule_adds_is_read_not_only_the_first()
    {
        // PostgreSQL 15 for an UPDATE of orders whose DO ALSO rule inserts into audit_trail: the rule's action comes first.
        const string plans = """
            [{"Plan": {"Node Type": "ModifyTable", "Operation": "Insert", "Relation Name": "audit_trail", "Schema": "public", "Alias": "audit_trail", "Plan Rows": 0, "Total Cost": 1.5,
              "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders", "Schema": "public", "Alias": "orders", "Plan Rows": 3, "Output": ["orders.id"]}]}},
             {"Plan": {"Node Type": "ModifyTable", "Operation": "Update", "Relation Name": "orders", "Schema": "public", "Alias": "orders", "Plan Rows": 0, "Total Cost": 2.5,
              "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders", "Schema": "public", "Alias": "orders", "Plan Rows": 3, "Output": ["orders.note", "orders.ctid"]}]}}]
            """;
        var facts = PlanReader.Read(plans);
        Assert.Contains(new RelationAccess(new RelationName("public", "audit_trail"), AccessLevel.Write, "insert"), facts.Relations);
        Assert.Contains(new RelationAccess(new RelationName("public", "orders"), AccessLevel.Write, "update"), facts.Relations);
        Assert.Equal(2, facts.Writers);
        Assert.Equal(6, facts.EstimatedWriteRows);
        Assert.Equal(4, facts.EstimatedCost);
    }

    [Fact]
    public void Functions_called_anywhere_in_the_plan_and_row_estimates_are_reported()
    {
        var facts = PlanReader.Read(WritableCtePlan);
        Assert.Equal([new FunctionCall(null, "pg_ls_dir"), new FunctionCall(null, "upper")], facts.Functions);
        Assert.Equal(42, facts.EstimatedRows);
        Assert.Equal(12.5, facts.EstimatedCost);
        Assert.Equal(["c.id"], facts.Outputs);
    }

    [Theory]
    [InlineData("public.\"Odd\"\"Name\"(c.id)", "public", "Odd\"Name")]
    [InlineData("pg_catalog.PG_READ_FILE('/etc/passwd'::text)", "pg_catalog", "pg_read_file")]
    [InlineData("(c.ssn || lower('f(x)'::text))", null, "lower")]
    public void Function_calls_are_read_out_of_expressions(string expression, string? schema, string name) =>
        Assert.Contains(new FunctionCall(schema, name), FunctionCallReader.Read(expression));

    [Theory]
    [InlineData("XMLTABLE(('/r'::text) PASSING (x) COLUMNS v character varying(10) PATH ('.'::text), c character(3) PATH ('@c'::text))")]
    [InlineData("JSON_VALUE(x, '$.a'::jsonpath RETURNING character varying(5))")]
    [InlineData("(x)::bit varying(8)")]
    public void A_type_with_a_modifier_is_no_function_call(string expression) =>
        Assert.DoesNotContain(FunctionCallReader.Read(expression), c => c.Name is "varying" or "character");

    [Theory]
    [InlineData("varying(c.id)", null, "varying")]
    [InlineData("(c.note || public.varying(c.id))", "public", "varying")]
    [InlineData("\"character\"(c.id)", null, "character")]
    [InlineData("public.character(c.id)", "public", "character")]
    public void A_function_named_like_a_type_word_is_still_a_call(string expression, string? schema, string name) =>
        Assert.Contains(new FunctionCall(schema, name), FunctionCallReader.Read(expression));

    [Fact]
    public void A_plain_select_reads_only()
    {
        var facts = PlanReader.Read("""[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "sales", "Plan Rows": 3}}]""");
        Assert.False(facts.Writes);
        Assert.Equal([new RelationAccess(new RelationName("sales", "orders"), AccessLevel.Read, "read")], facts.Relations);
    }

    [Fact]
    public void Output_without_a_plan_is_refused()
    {
        Assert.Throws<FormatException>(() => PlanReader.Read("""[{"Query Text": "select 1"}]"""));
    }

    [Fact]
    public void A_statement_rewritten_to_nothing_is_refused_saying_so()
    {
        var refused = Assert.Throws<Gatehouse.Enforcement.Execution.DatabaseException>(() => PlanReader.Read("[]"));
        Assert.Equal(Gatehouse.Enforcement.Execution.DatabaseFailure.Rejected, refused.Failure);
        Assert.Contains("rewrites this statement to nothing", refused.Message, StringComparison.Ordinal);
    }
}
