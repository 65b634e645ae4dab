using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Masking;

public sealed class TagDriftTests
{
    private static readonly RelationName Customers = new("public", "customers");

    private static ConnectionConfig Shop(params string[] tagged) => new("shop", "Host=x;Username=gw", SecretSource.None)
    {
        Tags = tagged.ToDictionary(c => new ColumnUse(Customers, c), c => c == "ssn_last4" ? "ssn" : c),
    };

    private static TableDescription Table(params ColumnDescription[] columns) => new(Customers, "table", null, columns, [], []);

    private static ColumnDescription Column(string name, params string[] computedFrom) => new(name, "text", true, null) { ComputedFrom = computedFrom };

    [Fact]
    public void A_generated_column_reading_a_tagged_column_must_be_tagged_itself()
    {
        var tables = new[] { Table(Column("id"), Column("name"), Column("ssn"), Column("ssn_last4", "name", "ssn")) };

        var derived = Assert.Single(TagDrift.UntaggedDerivations(Shop("ssn"), tables));
        Assert.Equal(new Derivation(new ColumnUse(Customers, "ssn_last4"), new ColumnUse(Customers, "ssn"), "ssn"), derived);
        Assert.Equal(
            "generated column public.customers.ssn_last4 is computed from public.customers.ssn, tagged ssn, but has no tag of its own, so it would show what that tag hides",
            TagDrift.Describe(derived));

        Assert.Empty(TagDrift.UntaggedDerivations(Shop("ssn", "ssn_last4"), tables));
        Assert.Empty(TagDrift.UntaggedDerivations(Shop(), tables));
    }

    [Fact]
    public void Generated_columns_of_untagged_columns_and_plain_columns_are_no_concern()
    {
        var tables = new[] { Table(Column("ssn"), Column("name"), Column("initials", "name"), Column("copy")) };

        Assert.Empty(TagDrift.UntaggedDerivations(Shop("ssn"), tables));
    }

    [Fact]
    public void An_inheritance_childs_generated_column_is_judged_by_its_parents_tags()
    {
        var archive = new RelationName("archive", "customers_2020");
        var child = new TableDescription(archive, "table", null, [Column("ssn"), Column("ssn_area", "ssn"), Column("ssn_last4", "ssn")], [], []) { Ancestors = [Customers] };

        var derived = Assert.Single(TagDrift.UntaggedDerivations(Shop("ssn", "ssn_last4"), [Table(Column("ssn"), Column("ssn_last4", "ssn")), child]));
        Assert.Equal(new Derivation(new ColumnUse(archive, "ssn_area"), new ColumnUse(archive, "ssn"), "ssn"), derived);
    }
}
