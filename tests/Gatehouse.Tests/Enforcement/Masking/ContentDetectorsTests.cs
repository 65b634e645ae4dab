using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Masking;

namespace Gatehouse.Tests.Enforcement.Masking;

public sealed class ContentDetectorsTests
{
    private static (string Masked, MaskingCounts Counts) Mask(string text)
    {
        var counts = new MaskingCounts();
        return (ContentDetectors.Mask(text, counts), counts);
    }

    [Theory]
    [InlineData("amelia.hartmann@example.com", "[email]")]
    [InlineData("write to bruno.carvalho+shop@mail.example.net today", "write to [email] today")]
    [InlineData("536-22-4821", "[ssn]")]
    [InlineData("ssn 412 67 9034 on file", "ssn [ssn] on file")]
    [InlineData("4111111111111111", "[card]")]
    [InlineData("card 4111 1111 1111 1111 exp 12/29", "card [card] exp 12/29")]
    [InlineData("378282246310005", "[card]")]
    [InlineData("5555-5555-5555-4444", "[card]")]
    [InlineData("+1 415 555 0134", "[phone]")]
    [InlineData("call +44 20 7946 0321", "call [phone]")]
    [InlineData("(415) 555-0134", "[phone]")]
    [InlineData("415.555.0134", "[phone]")]
    [InlineData("DE89 3704 0044 0532 0130 00", "[iban]")]
    [InlineData("GB82WEST12345698765432", "[iban]")]
    [InlineData("AKIAIOSFODNN7EXAMPLE", "[api_key]")]
    [InlineData("key=sk-proj-abcdefghijklmnopqrstuvwx", "key=[api_key]")]
    [InlineData("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[api_key]")]
    public void Sensitive_values_are_found_and_replaced_by_their_class(string text, string expected) =>
        Assert.Equal(expected, Mask(text).Masked);

    [Theory]
    [InlineData("123456789")]                       // a 9-digit business id is not an SSN
    [InlineData("000-12-3456")]                     // SSA never issues area 000
    [InlineData("666-12-3456")]                     // ... nor 666
    [InlineData("912-34-5678")]                     // ... nor 900-999
    [InlineData("123-00-4567")]                     // group 00
    [InlineData("123-45-0000")]                     // serial 0000
    [InlineData("4111111111111112")]                // fails Luhn
    [InlineData("1234567812345670")]                // Luhn-valid but no card network issues it
    [InlineData("order 100045 shipped 2025-01-14 09:12:00")]
    [InlineData("invoice_no 100001, total 412.50")]
    [InlineData("DE00 3704 0044 0532 0130 00")]     // bad IBAN check digits
    [InlineData("version 10.0.401 build 20261124")]
    [InlineData("Amelia Hartmann")]
    [InlineData("")]
    public void Ordinary_values_pass_untouched(string text)
    {
        var (masked, counts) = Mask(text);
        Assert.Equal(text, masked);
        Assert.Equal(0, counts.Total);
    }

    [Fact]
    public void A_jwt_and_a_private_key_are_masked()
    {
        var jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbmFseXN0In0.c2lnbmF0dXJlLWJ5dGVz";
        Assert.Equal("token: [jwt]", Mask("token: " + jwt).Masked);
        var pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
        Assert.Equal("[private_key]", Mask(pem).Masked);
        Assert.Equal("[private_key]", Mask("-----BEGIN RSA PRIVATE KEY-----\nMIIEow... (cut off").Masked);
    }

    [Fact]
    public void Counts_say_how_many_of_each_kind_were_masked()
    {
        var (masked, counts) = Mask("a@example.com, b@example.org, 4111111111111111");
        Assert.Equal("[email], [email], [card]", masked);
        Assert.Equal("email:2, card:1", counts.Describe());
    }

    [Fact]
    public void A_result_is_masked_in_values_lists_and_column_names()
    {
        var result = new QueryResult(
            [new ResultColumn("email", "text"), new ResultColumn("536-22-4821", "text"), new ResultColumn("tags", "text[]")],
            [["amelia@example.com", "x", new List<object?> { "536-22-4821", "ok" }], [null, 42L, new List<object?>()]],
            false,
            null,
            null);
        var counts = new MaskingCounts();
        var masked = ResultMasker.Mask(result, counts);
        Assert.Equal("[ssn]", masked.Columns[1].Name);
        Assert.Equal("[email]", masked.Rows[0][0]);
        Assert.Equal(["[ssn]", "ok"], (IEnumerable<object?>)masked.Rows[0][2]!);
        Assert.Equal(42L, masked.Rows[1][1]);
        Assert.Equal(new Dictionary<string, int> { ["email"] = 1, ["ssn"] = 2 }, masked.Masked);
        Assert.Equal(["email"], masked.MaskedColumns["email"]);
        Assert.Equal(["ssn"], masked.MaskedColumns["tags"]);
        Assert.False(masked.MaskedColumns.ContainsKey("[ssn]"));
    }
}
