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
}
