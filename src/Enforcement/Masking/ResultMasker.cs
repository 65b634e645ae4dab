using Gatehouse.Enforcement.Execution;

namespace Gatehouse.Enforcement.Masking;

/// <summary>The Mask stage's backstop: runs the content detectors over every text in a result, column names included.</summary>
public static class ResultMasker
{
    public static QueryResult Mask(QueryResult result, MaskingCounts counts, IReadOnlySet<string>? unmasked = null)
    {
        var columns = result.Columns.Select(c => c with { Name = ContentDetectors.Mask(c.Name, counts, unmasked) }).ToList();
        var rows = new List<object?[]>(result.Rows.Count);
        foreach (var row in result.Rows)
        {
            var masked = new object?[row.Length];
            for (var i = 0; i < row.Length; i++)
            {
                masked[i] = MaskValue(row[i], counts, unmasked);
            }

            rows.Add(masked);
        }

        return result with { Columns = columns, Rows = rows, Masked = counts.ByKind() };
    }

    private static object? MaskValue(object? value, MaskingCounts counts, IReadOnlySet<string>? unmasked) => value switch
    {
        string text => ContentDetectors.Mask(text, counts, unmasked),
        IEnumerable<object?> list => list.Select(v => MaskValue(v, counts, unmasked)).ToList(),
        _ => value,
    };
}
