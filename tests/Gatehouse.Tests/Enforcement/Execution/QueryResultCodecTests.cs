using Gatehouse.Enforcement.Execution;

namespace Gatehouse.Tests.Enforcement.Execution;

/// <summary>A result kept for its requester reads back as the result it was, whatever numbers it holds.</summary>
public sealed class QueryResultCodecTests
{
    [Fact]
    public void Every_kind_of_number_reads_back_as_it_was_written()
    {
        object?[] row = [7L, 12.50m, 1e30, 1e-30, -1.5e300, 0.1, 79228162514264337593543950335m, null, "1E+30", new List<object?> { 2.5e40, 3L }];
        var result = new QueryResult([new("a", "bigint")], [row], false, null, 1);

        var kept = QueryResultCodec.Write(result, "rights");
        var read = QueryResultCodec.Read(kept);

        Assert.Equal(kept, QueryResultCodec.Write(read, "rights"));
        Assert.Equal(1e30, read.Rows[0][2]);
        Assert.Equal(1e-30, read.Rows[0][3]);
        Assert.Equal(12.50m, read.Rows[0][1]);
        Assert.Equal("1E+30", read.Rows[0][8]);
        Assert.Equal(1L, read.AffectedRows);
    }
}
