using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Masking;

public sealed class OverlayMaskingTests
{
    private static readonly RelationName Customers = new("public", "customers");
    private static readonly ConnectionConfig Shop = new("shop", "Host=x", SecretSource.None)
    {
        Masking = MaskingMode.Overlay,
        Tags = new Dictionary<ColumnUse, string> { [new(Customers, "ssn")] = "ssn", [new(Customers, "email")] = "email" },
    };

    private static string? Rule(string planJson, params string[] unmask) =>
        OverlayMasking.Check(PlanReader.Read(planJson), Shop, unmask.ToHashSet())?.Rule;

    // PostgreSQL 18 prints what RETURNING reads of the changed row by RETURNING's own names for it: old, new, or those that
    // RETURNING WITH (OLD AS o, NEW AS n) gives. The UPDATE's scan outputs only what it needs to find the rows.
    [Theory]
    [InlineData("reverse(old.ssn)")]
    [InlineData("to_jsonb(old.*)")]
    [InlineData("new.email")]
    [InlineData("o.ssn")]
    public void What_a_writes_returning_reads_of_the_row_it_changed_is_charged_to_the_written_table(string output)
    {
        var plan = "[{\"Plan\": {\"Node Type\": \"ModifyTable\", \"Operation\": \"Update\", \"Relation Name\": \"customers\", \"Schema\": \"public\", \"Alias\": \"customers\","
            + $" \"Output\": [\"{output}\"], \"Plans\": [{{\"Node Type\": \"Seq Scan\", \"Parent Relationship\": \"Outer\", \"Relation Name\": \"customers\", \"Schema\": \"public\","
            + " \"Alias\": \"customers\", \"Output\": [\"id\", \"ctid\"], \"Filter\": \"(customers.id = 1)\"}]}}]";
        Assert.Equal("masking.tagged_column", Rule(plan));

        // The same write returning an untagged column of the row passes.
        Assert.Null(Rule(plan.Replace(output, output.StartsWith("to_jsonb", StringComparison.Ordinal) ? "old.id" : output.Split('.')[0].Split('(')[^1] + ".id", StringComparison.Ordinal)));
    }

    [Fact]
    public void A_returning_name_that_is_also_another_relations_alias_is_still_charged_to_the_written_table()
    {
        // RETURNING WITH (OLD AS o) ... with a subquery that scans orders as o: the plan prints o.ssn for both.
        const string Plan = """
            [{"Plan": {"Node Type": "ModifyTable", "Operation": "Update", "Relation Name": "customers", "Schema": "public", "Alias": "customers",
              "Output": ["reverse(o.ssn)", "(InitPlan 1).col1"],
              "Plans": [
                {"Node Type": "Limit", "Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1", "Output": ["1"],
                 "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders", "Schema": "public", "Alias": "o", "Output": ["1"]}]},
                {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "customers", "Schema": "public", "Alias": "customers",
                 "Output": ["id", "ctid"], "Filter": "(customers.id = 1)"}]}}]
            """;
        Assert.Equal("masking.tagged_column", Rule(Plan));
    }

    private static string Scan(string output, string? filter = null)
    {
        var filterJson = filter is null ? "" : $", \"Filter\": \"{filter}\"";
        return "[{\"Plan\": {\"Node Type\": \"Seq Scan\", \"Relation Name\": \"customers\", \"Schema\": \"public\", \"Alias\": \"c\", \"Output\": [" + output + "]" + filterJson + "}}]";
    }

    [Theory]
    [InlineData("\"c.id\", \"c.ssn\"", null)]
    [InlineData("\"reverse(c.ssn)\"", null)]
    [InlineData("\"c.id\"", "(c.ssn ~~ '5%'::text)")]
    [InlineData("\"row_to_json(c.*)\"", null)]
    [InlineData("\"c.*\"", null)]
    [InlineData("\"(('x'::text || c.email) || 'y'::text)\"", null)]
    public void Any_use_of_a_tagged_column_or_a_whole_row_is_refused(string output, string? filter) =>
        Assert.Equal("masking.tagged_column", Rule(Scan(output, filter)));

    [Fact]
    public void A_bare_column_after_an_array_slices_colon_is_a_column_not_a_cast_type()
    {
        // PostgreSQL 15, single table, for an integer column: SELECT cardinality((array_fill(0, ARRAY[id*0+2000000]))[1:ssn])
        // FROM customers answers the column's value.
        const string Slice = "cardinality((array_fill(0, ARRAY[((id * 0) + 2000000)]))[1:ssn])";
        static string Bare(string output) =>
            "[{\"Plan\": {\"Node Type\": \"Seq Scan\", \"Relation Name\": \"customers\", \"Schema\": \"public\", \"Alias\": \"customers\", \"Output\": [\"" + output + "\"]}}]";
        Assert.Equal("masking.tagged_column", Rule(Bare(Slice)));
        Assert.Null(Rule(Bare(Slice.Replace("[1:ssn]", "[1:id]", StringComparison.Ordinal))));

        // The name after :: is a type, not a column.
        Assert.Null(Rule(Bare("(id)::ssn")));
    }

    [Fact]
    public void Untagged_columns_pass() => Assert.Null(Rule(Scan("\"c.id\", \"c.full_name\"", "(c.country = 'US'::bpchar)")));

    [Fact]
    public void The_matching_unmask_right_lets_the_column_through()
    {
        Assert.Null(Rule(Scan("\"c.email\""), "email"));
        Assert.Equal("masking.tagged_column", Rule(Scan("\"c.email\", \"c.ssn\""), "email"));
        Assert.Null(Rule(Scan("\"c.*\""), "all"));
    }

    [Fact]
    public void A_qualified_function_name_is_not_mistaken_for_a_column() =>
        Assert.Equal([("c", "full_name")], ColumnReader.Read("pg_catalog.upper(c.full_name)"));

    [Fact]
    public void An_alias_used_for_two_relations_is_charged_to_both()
    {
        const string plan = """
            [{"Plan": {"Node Type": "Append", "Plans": [
              {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "x", "Output": ["x.id", "x.note"]},
              {"Node Type": "Seq Scan", "Relation Name": "customers", "Schema": "public", "Alias": "x", "Output": ["x.id", "x.email"]}]}}]
            """;
        var facts = PlanReader.Read(plan);
        Assert.Contains(new ColumnUse(Customers, "email"), facts.Columns);
        Assert.Contains(new ColumnUse(new RelationName("public", "orders"), "email"), facts.Columns);
    }
}
