using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Masking;

namespace Gatehouse.Tests.Enforcement.Masking;

public sealed class ColumnClassifierTests
{
    private static ProposedTag? Propose(string name, string? comment = null, params string[] samples) =>
        ColumnClassifier.Propose(new ColumnDescription(name, "text", true, comment), samples);

    [Theory]
    [InlineData("email", "email")]
    [InlineData("billing_email", "email")]
    [InlineData("mobile_phone", "phone")]
    [InlineData("ssn", "ssn")]
    [InlineData("card_number", "card")]
    [InlineData("api_key", "secret")]
    [InlineData("last_name", "name")]
    public void Names_suggest_classes(string column, string expected) => Assert.Equal(expected, Propose(column)!.Class);

    [Fact]
    public void Sampled_values_reveal_a_sensitive_column_with_an_innocent_name()
    {
        var tag = Propose("contact", null, "amelia@example.com", "bruno@example.net", "n/a");
        Assert.Equal("email", tag!.Class);
        Assert.Contains("2/3 sampled values look like email", tag.Reason);
        Assert.DoesNotContain("amelia", tag.Reason);
    }

    [Fact]
    public void A_comment_can_mark_a_column_sensitive() => Assert.Equal("ssn", Propose("tin", "US SSN of the holder")!.Class);

    [Fact]
    public void Ordinary_columns_get_no_proposal()
    {
        Assert.Null(Propose("status", null, "paid", "delivered"));
        Assert.Null(Propose("invoice_no", null, "100001", "100002"));
    }
}
