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

    // As data is stored, not as an agent would disguise it: other scripts' and widths' digits, typographic separators.
    [Theory]
    [InlineData("\uFF15\uFF13\uFF16-\uFF12\uFF12-\uFF14\uFF18\uFF12\uFF11", "[ssn]")]
    [InlineData("ssn 536\u00A022\u00A04821 on file", "ssn [ssn] on file")]
    [InlineData("ssn 536\u201122\u20114821", "ssn [ssn]")]
    [InlineData("card 4111\u202F1111\u202F1111\u202F1111", "card [card]")]
    [InlineData("\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661", "[card]")]
    [InlineData("amelia.hartmann\uFF20example.com", "[email]")]
    public void Sensitive_values_written_with_other_digits_or_separators_are_found_too(string text, string expected) =>
        Assert.Equal(expected, Mask(text).Masked);

    [Theory]
    [InlineData("\uFF56\uFF45\uFF52\uFF53\uFF49\uFF4F\uFF4E \uFF11\uFF12")]
    [InlineData("Preis: 12\u00A0500\u00A0\u20AC")]
    [InlineData("\u0661\u0662\u0663\u0664")]
    public void Text_with_other_digits_or_separators_and_nothing_sensitive_comes_back_as_it_was(string text) =>
        Assert.Same(text, Mask(text).Masked);

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

    // Digits in other scripts count as digits to the patterns' \d, so they are in the alphabet too.
    private const string Alphabet = "0123456789012345678901234567890123456789  --..()+@_:/TZABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\u0663\uFF15";

    private static readonly string[] Fragments =
    [
        "4111 1111 1111 1111", "378282246310005", "5555-5555-5555-4444", "536-22-4821", "412 67 9034", "+1 415 555 0134",
        "+44 20 7946 0321", "(415) 555-0134", "415.555.0134", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
        "AKIAIOSFODNN7EXAMPLE", "sk-proj-abcdefghijklmnopqrstuvwx", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "xoxb-1234567890-abcdef", "glpat-abcdefghijklmnopqrstu", "AIzaSyA1234567890abcdefghijklmnopqrstuv", "a.b@example.com",
        "2025-01-14T09:12:00.0000000Z", "c4ca4238a0b923820dcc509a6f75849b", "0f8fad5b-d9cb-469f-a165-70867728950e",
        "\u0665\u0663\u0666-22-4821",
    ];

    [Fact]
    public void The_pre_checks_skip_no_value_a_detector_would_mask()
    {
        // Random texts, many with a sensitive value (or its near miss) spliced in, and every test value above: the pre-checks
        // that decide which regexes run must change nothing against running every regex the coarse checks allow.
        var random = new Random(20261206);
        var texts = new List<string>(Fragments);
        for (var i = 0; i < 100_000; i++)
        {
            var text = new System.Text.StringBuilder();
            var pieces = random.Next(1, 4);
            for (var p = 0; p < pieces; p++)
            {
                if (random.Next(3) == 0)
                {
                    var fragment = Fragments[random.Next(Fragments.Length)].ToCharArray();
                    // A near miss now and then: one character changed, dropped or doubled.
                    var at = random.Next(fragment.Length);
                    var near = random.Next(4) switch
                    {
                        0 => new string(fragment).Remove(at, 1),
                        1 => new string(fragment).Insert(at, fragment[at].ToString()),
                        2 => new string(fragment).Remove(at, 1).Insert(at, Alphabet[random.Next(Alphabet.Length)].ToString()),
                        _ => new string(fragment),
                    };
                    text.Append(near);
                }
                else
                {
                    for (var c = random.Next(1, 24); c > 0; c--)
                    {
                        text.Append(Alphabet[random.Next(Alphabet.Length)]);
                    }
                }
            }

            texts.Add(text.ToString());
        }

        var found = 0;
        foreach (var text in texts)
        {
            var (fine, fineCounts) = Mask(text);
            var coarseCounts = new MaskingCounts();
            var coarse = ContentDetectors.MaskWithCoarseChecks(text, coarseCounts);
            Assert.True(coarse == fine, $"'{text}': '{fine}' with the pre-checks, '{coarse}' with every regex");
            Assert.Equal(coarseCounts.Describe(), fineCounts.Describe());
            found += fineCounts.Total > 0 ? 1 : 0;
        }

        // The corpus exercises the detectors: a good share of it holds something to mask.
        Assert.InRange(found, texts.Count / 10, texts.Count);
    }

    [Theory]
    [InlineData("2025-01-14T09:12:00.0000000Z")]
    [InlineData("0f8fad5b-d9cb-469f-a165-70867728950e")]
    [InlineData("c4ca4238a0b923820dcc509a6f75849b")]
    public void Timestamps_uuids_and_digests_pass_untouched(string text) => Assert.Equal(text, Mask(text).Masked);

    [Theory]
    [InlineData("eyJ")]
    [InlineData("a@")]
    [InlineData("1 ")]
    [InlineData("+1 ")]
    public void A_value_built_to_make_a_detector_backtrack_is_masked_in_time_linear_in_its_length(string unit)
    {
        // Just under the default 4 MiB result cap: "eyJ" repeated made the JWT detector scan the rest of the run from each
        // repetition, many CPU-minutes for one value; a linear scan takes well under a second.
        var text = string.Concat(Enumerable.Repeat(unit, 3_900_000 / unit.Length));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Mask(text);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"masking took {clock.Elapsed}");
    }
}
