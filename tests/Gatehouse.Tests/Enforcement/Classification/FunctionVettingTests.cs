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
    [InlineData("coalesce")]
    [InlineData("greatest")]
    public void Stable_and_harmless_built_ins_and_sql_constructs_pass(string name) => Assert.Null(Rule(name));

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

    private static string? NamedRule(string sql, params string[] allowlist) =>
        FunctionVetting.VetNamed(StatementReader.Read(sql)[0], Catalog, allowlist)?.Rule;

    [Theory]
    [InlineData("select owner_rights()")]
    [InlineData("select 1 from orders where shipping_cost(3) > 1")]
    [InlineData("select * from public.shipping_cost(3) as s (cost)")]
    [InlineData("select query_to_xml('select 1', true, false, '')")]
    public void Functions_the_text_names_are_refused_before_planning_as_the_plan_would_refuse_them(string sql) =>
        Assert.Equal("function.not_allowed", NamedRule(sql));

    [Theory]
    [InlineData("select pg_catalog.upper(name), now(), random() from t")]
    [InlineData("select nextval('s'), txid_current()")]
    [InlineData("insert into shipping_cost (a) values (1)")]
    [InlineData("select x as owner_rights from t")]
    [InlineData("select 1 from t as shipping_cost (a)")]
    [InlineData("select cast(x as shipping_cost(3)) from t")]
    [InlineData("select 'owner_rights()' as text, made_up(1)")]
    public void Names_that_are_not_calls_volatile_built_ins_and_unknown_names_are_left_to_the_plan(string sql) =>
        Assert.Null(NamedRule(sql));

    private static readonly FunctionCatalog WithOperators = new(
        [new FunctionInfo("public", "nextval", Volatility.Immutable, true, "sql"), new FunctionInfo("pg_catalog", "nextval", Volatility.Volatile, false, "internal")],
        [
            new("public", "###", new FunctionInfo("public", "peek", Volatility.Immutable, true, "sql")),
            new("public", "+@", new FunctionInfo("public", "bump", Volatility.Volatile, false, "plpgsql")),
            new("public", "%", new FunctionInfo("public", "similarity_op", Volatility.Stable, false, "c")),
            new("public", "<>", new FunctionInfo("public", "dtext_ne", Volatility.Immutable, true, "sql")),
            new("public", "=", new FunctionInfo("public", "money_eq", Volatility.Volatile, false, "sql")),
            new("public", "!!!", new FunctionInfo("pg_catalog", "lo_unlink", Volatility.Volatile, false, "internal")),
        ],
        [new CastInfo("public", "vault_key", new FunctionInfo("public", "redeem", Volatility.Immutable, true, "sql"))]);

    private static string? OperatorRule(string sql, params string[] allowlist) =>
        FunctionVetting.VetNamed(StatementReader.Read(sql)[0], WithOperators, allowlist)?.Reason;

    [Theory]
    [InlineData("select ### 'door'", "public.peek, which runs with its owner's rights")]
    [InlineData("select 'a' operator(public.###) 'b'", "public.peek")]
    [InlineData("select ###'door'", "public.peek")]
    [InlineData("select n +@ 1 from t", "public.bump, which is a volatile user function")]
    [InlineData("select 'a'::dtext != 'x'", "public.dtext_ne")]
    [InlineData("select * from t where a not in (1, 2)", "public.dtext_ne")]
    [InlineData("select * from t order by a", "public.dtext_ne")]
    [InlineData("select * from t where a = 1", "public.money_eq")]
    [InlineData("select !!! 1", "pg_catalog.lo_unlink, which touches large objects")]
    [InlineData("select 'a'::vault_key", "the cast to public.vault_key is not allowed: it calls public.redeem")]
    [InlineData("select cast('a' as \"vault_key\")", "public.redeem")]
    [InlineData("insert into t (a) values (nextval('s'))", "public.nextval")]
    public void An_operator_or_cast_over_an_unsafe_function_is_refused_naming_the_function(string sql, string why) =>
        Assert.Contains(why, OperatorRule(sql));

    [Theory]
    [InlineData("select 5 % 3, 'a' % 'b'")]
    [InlineData("select 1 + 1, 2 ++ 3")]
    [InlineData("select '###' as hashes")]
    [InlineData("select f(a => 1), 'vault_key' as name")]
    public void Operators_over_pure_functions_a_volatile_one_the_text_does_not_spell_and_lookalike_words_pass(string sql) => Assert.Null(OperatorRule(sql));

    [Fact]
    public void A_volatile_user_operator_is_refused_only_where_the_text_spells_it()
    {
        var catalog = new FunctionCatalog([], [new OperatorInfo("public", "=", new FunctionInfo("public", "money_eq", Volatility.Volatile, false, "sql"))]);
        Assert.Null(FunctionVetting.VetNamed(StatementReader.Read("select * from t where a in (1, 2) order by a")[0], catalog, []));
        Assert.NotNull(FunctionVetting.VetNamed(StatementReader.Read("select * from t where a = 1")[0], catalog, []));
    }

    [Fact]
    public void An_operator_whose_function_is_on_the_allowlist_passes() => Assert.Null(OperatorRule("select ### 'door'", "public.peek"));

    [Fact]
    public void A_named_function_on_the_allowlist_passes() => Assert.Null(NamedRule("select shipping_cost(3)", "public.shipping_cost"));

    [Fact]
    public void A_name_the_catalog_does_not_know_is_refused() => Assert.Equal(FunctionVetting.UnknownRule, Rule("made_up"));
}
