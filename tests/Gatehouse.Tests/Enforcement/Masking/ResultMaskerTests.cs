using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Masking;

namespace Gatehouse.Tests.Enforcement.Masking;

public sealed class ResultMaskerTests
{
    private static QueryResult Result(params object?[][] rows) =>
        new([new("id", "bigint"), new("contact", "text"), new("tags", "text[]")], rows, false, null, null);

    [Fact]
    public void Masks_values_and_arrays_and_leaves_the_input_result_as_it_was()
    {
        var raw = Result(
            [1L, "amelia.hartmann@example.com", new List<object?> { "vip", "536-22-4821" }],
            [2L, "call after 6pm", new List<object?> { "new" }]);

        var masked = ResultMasker.Mask(raw, new MaskingCounts());

        Assert.Equal("[email]", masked.Rows[0][1]);
        Assert.Equal(["vip", "[ssn]"], (List<object?>)masked.Rows[0][2]!);
        Assert.Equal("amelia.hartmann@example.com", raw.Rows[0][1]);
        Assert.Equal(["vip", "536-22-4821"], (List<object?>)raw.Rows[0][2]!);
        Assert.Equal(new Dictionary<string, int> { ["email"] = 1, ["ssn"] = 1 }, masked.Masked);
        Assert.Equal(["email"], masked.MaskedColumns["contact"]);
    }

    [Fact]
    public void A_row_with_nothing_to_mask_is_not_copied()
    {
        var raw = Result([1L, "call after 6pm", new List<object?> { "new" }], [2L, "bruno@example.net", null]);

        var masked = ResultMasker.Mask(raw, new MaskingCounts());

        Assert.Same(raw.Rows[0], masked.Rows[0]);
        Assert.NotSame(raw.Rows[1], masked.Rows[1]);
        Assert.Equal("[email]", masked.Rows[1][1]);
    }

    [Fact]
    public void A_card_number_of_13_to_16_digits_held_as_a_number_is_masked_and_other_numbers_keep_their_type()
    {
        var raw = new QueryResult(
            [new("as_bigint", "bigint"), new("as_numeric", "numeric"), new("as_double", "double precision")],
            [
                [4111111111111111L, 4111111111111111.00m, 4111111111111111d],
                [-5500000000000004L, 378282246310005m, 4111111111111111.5],
                [4111111111111112L, 1234567890123.45m, 123456789d],
                [long.MinValue, decimal.MaxValue, 1e300],
                [4000000000000000006L, 4000000000000000006m, 999999999999d],
            ],
            false,
            null,
            null);

        var masked = ResultMasker.Mask(raw, new MaskingCounts());

        Assert.Equal(new object?[] { "[card]", "[card].00", "[card]" }, masked.Rows[0]);
        Assert.Equal(new object?[] { "-[card]", "[card]", "[card]" }, masked.Rows[1]);
        Assert.Same(raw.Rows[2], masked.Rows[2]);
        Assert.Same(raw.Rows[3], masked.Rows[3]);
        // A 19-digit card passes as a number: as many keys of that length (snowflake ids, hashes) would pass a card's checks.
        Assert.Same(raw.Rows[4], masked.Rows[4]);
        Assert.Equal(new Dictionary<string, int> { ["card"] = 6 }, masked.Masked);
        Assert.Equal(["card"], masked.MaskedColumns["as_double"]);

        // A caller who may see cards gets the numbers as they were.
        var unmasked = ResultMasker.Mask(raw, new MaskingCounts(), new HashSet<string> { "card" });
        Assert.Same(raw.Rows[0], unmasked.Rows[0]);
    }
}
