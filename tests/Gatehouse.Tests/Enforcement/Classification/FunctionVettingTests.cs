using Gatehouse.Enforcement.Classification;

namespace Gatehouse.Tests.Enforcement.Classification;

public sealed class FunctionVettingTests
{
    private static readonly FunctionCatalog Catalog = new(
    [
        new("pg_catalog", "upper", Volatility.Immutable, false, "internal"),
        new("pg_catalog", "now", Volatility.Stable, false, "internal"),
        new("pg_catalog", "random", Volatility.Volatile, false, "internal"),
        new("pg_catalog", "txid_current", Volatility.Volatile, false, "internal"),
        new("pg_catalog", "pg_read_file", Volatility.Volatile, false, "internal"),
        new("pg_catalog", "query_to_xml", Volatility.Stable, false, "internal"),
        new("pg_catalog", "table_to_xml", Volatility.Stable, false, "internal"),
        new("pg_catalog", "lo_export", Volatility.Volatile, false, "internal"),
        new("pg_catalog", "set_config", Volatility.Volatile, false, "internal"),
        new("pg_catalog", "pg_advisory_lock", Volatility.Volatile, false, "internal"),
        new("pg_catalog", "nextval", Volatility.Volatile, false, "internal"),
        new("public", "dblink", Volatility.Volatile, false, "c"),
        new("public", "owner_rights", Volatility.Stable, true, "sql"),
        new("public", "shipping_cost", Volatility.Immutable, false, "sql"),
        new("public", "upper", Volatility.Volatile, false, "plpgsql"),
        new("pg_catalog", "gen_random_uuid", Volatility.Volatile, false, "internal"),
        new("gatehouse", "gen_random_uuid", Volatility.Volatile, false, "c"),
        new("gatehouse", "hmac", Volatility.Immutable, false, "c"),
    ]);

    private static string? Rule(string name, string? schema = null, bool writes = false, params string[] allowlist) =>
        FunctionVetting.Vet([new FunctionCall(schema, name)], Catalog, writes, allowlist)?.Rule;

    [Theory]
    [InlineData("now")]
    [InlineData("random")]
    public void Stable_and_harmless_built_ins_pass(string name) => Assert.Null(Rule(name));

    [Theory]
    [InlineData("COALESCE(a, 1)")]
    [InlineData("GREATEST(a, b)")]
    [InlineData("XMLTABLE(('/r'::text) PASSING (x) COLUMNS v text PATH ('.'::text) DEFAULT ('z'::text))")]
    public void SQL_constructs_printed_as_keywords_are_no_function_calls(string expression) =>
        Assert.Null(FunctionVetting.Vet(FunctionCallReader.Read(expression), Catalog, statementWrites: false, []));

    [Theory]
    [InlineData("passing(x)")]
    [InlineData("\"default\"(x)")]
    [InlineData("\"COALESCE\"(x)")]
    [InlineData("public.coalesce(x)")]
    public void A_function_named_like_a_construct_is_looked_up_as_a_function(string expression) =>
        Assert.Equal(FunctionVetting.UnknownRule, FunctionVetting.Vet(FunctionCallReader.Read(expression), Catalog, statementWrites: false, [])?.Rule);

    [Fact]
    public void An_immutable_built_in_passes_when_qualified() => Assert.Null(Rule("upper", "pg_catalog"));

    [Theory]
    [InlineData("pg_read_file", "reads server files")]
    [InlineData("query_to_xml", "runs a SQL string")]
    [InlineData("table_to_xml", "around grants")]
    [InlineData("lo_export", "large objects")]
    [InlineData("set_config", "changes settings")]
    [InlineData("pg_advisory_lock", "advisory locks")]
    [InlineData("dblink", "other databases")]
    [InlineData("txid_current", "volatile built-in")]
    [InlineData("nextval", "sequence")]
    public void Dangerous_functions_are_refused_saying_why(string name, string why)
    {
        var decision = FunctionVetting.Vet([new FunctionCall(null, name)], Catalog, statementWrites: false, []);
        Assert.Equal("function.not_allowed", decision!.Rule);
        Assert.Contains(why, decision.Reason);
    }

    [Fact]
    public void Strict_maskings_own_schema_does_not_shadow_built_ins_but_is_refused_by_name()
    {
        Assert.Null(Rule("gen_random_uuid"));
        Assert.Equal("function.not_allowed", Rule("hmac", "gatehouse"));
    }

    [Fact]
    public void Sequences_may_advance_in_a_statement_that_writes() => Assert.Null(Rule("nextval", writes: true));

    [Fact]
    public void A_security_definer_function_is_refused_unless_allowlisted()
    {
        Assert.Equal("function.not_allowed", Rule("owner_rights"));
        Assert.Null(Rule("owner_rights", allowlist: "public.owner_rights"));
    }

    [Fact]
    public void A_user_function_needs_the_allowlist() =>
        Assert.Equal(("function.not_allowed", (string?)null), (Rule("shipping_cost"), Rule("shipping_cost", allowlist: "public.shipping_cost")));

    [Fact]
    public void An_unqualified_name_must_be_safe_in_every_schema_that_defines_it() =>
        Assert.Equal("function.not_allowed", Rule("upper"));

    private static readonly FunctionCatalog ByOid = new(
        [
            new FunctionInfo("public", "peek", Volatility.Immutable, true, "sql") { Oid = 16400 },
            new FunctionInfo("pg_catalog", "int4eq", Volatility.Immutable, false, "internal") { Oid = 65 },
            new FunctionInfo("public", "nextval", Volatility.Immutable, true, "sql") { Oid = 16410 },
            new FunctionInfo("pg_catalog", "nextval", Volatility.Volatile, false, "internal") { Oid = 1574 },
            new FunctionInfo("public", "vault_cmp", Volatility.Immutable, true, "sql") { Oid = 16420 },
        ],
        [new OperatorInfo(16430, "public", "<", new FunctionInfo("public", "vault_cmp", Volatility.Immutable, true, "sql") { Oid = 16420 })]);

    [Fact]
    public void A_parse_tree_names_functions_by_oid_and_the_functions_behind_operators_that_are_not_built_ins()
    {
        var calls = FunctionVetting.Calls(new StatementReferences([65, 16400], [96, 16430], Writes: false), ByOid);
        Assert.Equal([new FunctionCall("pg_catalog", "int4eq"), new FunctionCall("public", "peek"), new FunctionCall("public", "vault_cmp")], calls);
    }

    [Fact]
    public void Only_calls_a_policy_could_allow_or_refuse_are_carried_with_a_cached_plan()
    {
        var calls = FunctionVetting.Calls(new StatementReferences([65, 16400, 1574], [16430], Writes: false), ByOid)!;
        Assert.Equal(
            [new FunctionCall("public", "peek"), new FunctionCall("pg_catalog", "nextval"), new FunctionCall("public", "vault_cmp")],
            FunctionVetting.ForPolicy(calls, ByOid, statementWrites: false));
        Assert.DoesNotContain(new FunctionCall("pg_catalog", "nextval"), FunctionVetting.ForPolicy(calls, ByOid, statementWrites: true));
    }

    [Theory]
    [InlineData(99999u, 0u)]
    [InlineData(65u, 16440u)]
    public void A_function_or_user_operator_the_catalog_does_not_know_asks_for_the_catalog_again(uint function, uint op) =>
        Assert.Null(FunctionVetting.Calls(new StatementReferences([function], op == 0 ? [] : [op], Writes: false), ByOid));

    [Theory]
    [InlineData(16400u, "public.peek", "SECURITY DEFINER")]
    [InlineData(16410u, "public.nextval", "SECURITY DEFINER")]
    public void A_function_the_parse_tree_names_is_vetted_by_what_it_is_not_by_what_it_is_called(uint oid, string qualified, string why)
    {
        // A writing statement may advance a sequence, but only with pg_catalog's nextval: a lookalike elsewhere is vetted as itself.
        var decision = FunctionVetting.Vet(FunctionVetting.Calls(new StatementReferences([oid], [], Writes: true), ByOid)!, ByOid, statementWrites: true, []);
        Assert.Equal("function.not_allowed", decision!.Rule);
        Assert.Contains(qualified, decision.Reason);
        Assert.Contains(why, decision.Reason);
        Assert.Null(FunctionVetting.Vet([new FunctionCall("pg_catalog", "nextval")], ByOid, statementWrites: true, []));
    }

    [Fact]
    public void A_name_the_catalog_does_not_know_is_refused() => Assert.Equal(FunctionVetting.UnknownRule, Rule("made_up"));
}
