using System.Globalization;
using Gatehouse.Enforcement.Execution;

namespace Gatehouse.Enforcement.Masking;

/// <summary>The Mask stage's backstop: runs the content detectors over every text in a result, column names included.</summary>
public static class ResultMasker
{
    public static QueryResult Mask(QueryResult result, MaskingCounts counts, IReadOnlySet<string>? unmasked = null)
    {
        var columns = result.Columns.Select(c => c with { Name = ContentDetectors.Mask(c.Name, counts, unmasked) }).ToList();
        var perColumn = columns.Select(_ => new MaskingCounts()).ToArray();
        var rows = new List<object?[]>(result.Rows.Count);
        foreach (var row in result.Rows)
        {
            // A row is copied only when a value in it changes: a large result with nothing to mask is not held twice.
            object?[]? masked = null;
            for (var i = 0; i < row.Length; i++)
            {
                var value = MaskValue(row[i], perColumn[i], unmasked);
                if (masked is null && !ReferenceEquals(value, row[i]))
                {
                    masked = (object?[])row.Clone();
                }

                if (masked is not null)
                {
                    masked[i] = value;
                }
            }

            rows.Add(masked ?? row);
        }

        foreach (var column in perColumn)
        {
            counts.Add(column);
        }

        // Which output columns carried what, so the agent (and the audit log) can see what was masked where.
        var maskedColumns = columns
            .Select((c, i) => (c.Name, Kinds: perColumn[i].ByKind().Keys.ToList()))
            .Where(c => c.Kinds.Count > 0)
            .GroupBy(c => c.Name, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.SelectMany(c => c.Kinds).Distinct().ToList(), StringComparer.Ordinal);
        return result with { Columns = columns, Rows = rows, Masked = counts.ByKind(), MaskedColumns = maskedColumns };
    }

    // The same instance back when nothing in it was masked.
    private static object? MaskValue(object? value, MaskingCounts counts, IReadOnlySet<string>? unmasked)
    {
        switch (value)
        {
            case string text:
                var masked = ContentDetectors.Mask(text, counts, unmasked);
                return masked == text ? text : masked;
            // A card number cast to a number (`replace(card, ' ', '')::bigint`) is a card still. Only a card's digits can be
            // found in a number's text (the other kinds need separators, letters or a '+'), and a card has 13 digits or more.
            case long n when n is >= CardFloor or <= -CardFloor:
                return MaskNumber(value, n.ToString(CultureInfo.InvariantCulture), counts, unmasked);
            case decimal m when Math.Abs(m) >= CardFloor:
                return MaskNumber(value, m.ToString(CultureInfo.InvariantCulture), counts, unmasked);
            case double d when Math.Abs(d) is >= CardFloor and < 1e19:
                return MaskNumber(value, Math.Truncate(d).ToString("F0", CultureInfo.InvariantCulture), counts, unmasked);
            case IEnumerable<object?> list:
                var items = list.ToList();
                var maskedItems = items.ConvertAll(v => MaskValue(v, counts, unmasked));
                return maskedItems.SequenceEqual(items, ReferenceEqualityComparer.Instance) ? value : maskedItems;
            default:
                return value;
        }
    }

    // The least number with a card's 13 digits.
    private const long CardFloor = 1_000_000_000_000;

    // The number as it was when its digits hold nothing; otherwise its text, masked.
    private static object MaskNumber(object number, string text, MaskingCounts counts, IReadOnlySet<string>? unmasked)
    {
        var masked = ContentDetectors.Mask(text, counts, unmasked);
        return ReferenceEquals(masked, text) ? number : masked;
    }
}
