using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Policy;

/// <summary>What <c>policy check --connection</c> reports from a catalog: the names a policy gives that match nothing.</summary>
public sealed class PolicyCatalogCheckTests
{
    private static readonly TableDescription[] Catalog =
    [
        Table("orders", "table", "id", "total"),
        Table("customers", "table", "id", "email"),
        Table("recent_orders", "view", "id", "total"),
    ];

    private static TableDescription Table(string name, string kind, params string[] columns) =>
        new(new RelationName("public", name), kind, null, columns.Select(c => new ColumnDescription(c, "text", true, null)).ToList(), [], []);

    private static IReadOnlyList<string> Problems(string yaml) =>
        PolicyCatalogCheck.Problems(PolicyLoaderTests.Parse(yaml), "shop", Catalog, new HashSet<string> { "public" }, new HashSet<string>());

    [Fact]
    public void A_policy_whose_names_all_exist_has_no_problems()
    {
        Assert.Empty(Problems(PolicyLoaderTests.Minimal + "\nguardrails:\n  - id: big\n    match: { tables: [public.orders] }\n    outcome: deny\n"));
    }

    [Fact]
    public void A_guardrail_on_a_table_that_differs_only_in_case_is_reported_with_the_real_name()
    {
        // Names compare as stored, so this deny would never fire: the refusal it was written for would silently not happen.
        var problem = Assert.Single(Problems(PolicyLoaderTests.Minimal + "\nguardrails:\n  - id: big\n    match: { tables: [public.Orders] }\n    outcome: deny\n"));

        Assert.Equal("guardrail 'big': names table public.Orders, which does not exist (names are case-sensitive: the database has public.orders)", problem);
    }

    [Fact]
    public void A_guardrail_on_a_view_is_reported_when_it_may_match_reads_whose_plans_never_name_the_view()
    {
        // A write through the view's INSTEAD OF triggers is planned on the view, so a guardrail limited to writes can match.
        const string Guardrail = "\nguardrails:\n  - id: recent\n    match: { tables: [public.recent_orders]MATCH }\n    outcome: require_approval\n";

        Assert.StartsWith("guardrail 'recent': names view public.recent_orders, which no read's plan names", Assert.Single(Problems(PolicyLoaderTests.Minimal + Guardrail.Replace("MATCH", "", StringComparison.Ordinal))));
        Assert.Empty(Problems(PolicyLoaderTests.Minimal + Guardrail.Replace("MATCH", ", operations: [update, delete]", StringComparison.Ordinal)));
        Assert.Empty(Problems(PolicyLoaderTests.Minimal + Guardrail.Replace("MATCH", ", kinds: [update]", StringComparison.Ordinal)));
    }

    [Fact]
    public void A_guardrail_for_another_connection_or_for_any_of_several_is_not_judged_against_this_one()
    {
        var yaml = PolicyLoaderTests.Minimal.Replace("connections:\n", "connections:\n  warehouse:\n    connection_string: \"Host=127.0.0.1;Database=wh;Username=gw\"\n    password_env: WH_PW\n", StringComparison.Ordinal);
        var guardrail = "\nguardrails:\n  - id: stock\n    connection: warehouse\n    match: { tables: [public.stock] }\n    outcome: deny\n";

        Assert.Empty(Problems(yaml + guardrail));
        Assert.Empty(Problems(yaml + guardrail.Replace("    connection: warehouse\n", "", StringComparison.Ordinal)));
        Assert.Single(Problems(yaml + guardrail.Replace("connection: warehouse", "connection: shop", StringComparison.Ordinal)));
    }

    [Fact]
    public void A_grant_or_tag_that_differs_only_in_case_names_the_real_one()
    {
        var yaml = PolicyLoaderTests.Minimal
            .Replace("tables: [public.orders, customers]", "tables: [public.Orders, customers]", StringComparison.Ordinal)
            .Replace("password_env: SHOP_PW", "password_env: SHOP_PW\n    tags: { public.customers.Email: email }", StringComparison.Ordinal);

        var problems = Problems(yaml);

        Assert.Contains("agent 'analyst': a grant names table public.Orders, which does not exist (names are case-sensitive: the database has public.orders)", problems);
        Assert.Contains("tag public.customers.Email (email): table public.customers has no column 'Email' (names are case-sensitive: the database has email)", problems);
    }
}
