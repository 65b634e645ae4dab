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
            case long or decimal or double:
                return MaskNumber(value, counts, unmasked);
            case IEnumerable<object?> list:
                var items = list.ToList();
                var maskedItems = items.ConvertAll(v => MaskValue(v, counts, unmasked));
                return maskedItems.SequenceEqual(items, ReferenceEqualityComparer.Instance) ? value : maskedItems;
            default:
                return value;
        }
    }

    // A card cast to a number (`replace(card, ' ', '')::bigint`) is a card still. A number's text has no separators, letters
    // or '+', so of the detectors only the card's could find anything in it: that check runs on the whole part's digits, with
    // no string made unless they are a card. Only numbers of 13 to 16 digits are read. Cards of 17 to 19 digits are rare, and
    // keys of 18 and 19 digits (snowflake ids, hashes) common, about one in seventy of which would pass a card's checks.
    private static object MaskNumber(object number, MaskingCounts counts, IReadOnlySet<string>? unmasked)
    {
        const ulong Least = 1_000_000_000_000, Past = 10_000_000_000_000_000;
        var (whole, negative) = number switch
        {
            long n when n is > -(long)Past and < (long)Past => ((ulong)Math.Abs(n), n < 0),
            decimal m when Math.Abs(m) < Past => ((ulong)decimal.Truncate(Math.Abs(m)), m < 0),
            double d when Math.Abs(d) < Past => ((ulong)Math.Truncate(Math.Abs(d)), d < 0),
            _ => (0ul, false),
        };
        var card = MaskingCounts.ClassOf(SensitiveKind.Card);
        if (whole < Least || unmasked?.Contains(card) == true || unmasked?.Contains("all") == true)
        {
            return number;
        }

        Span<char> digits = stackalloc char[16];
        if (!whole.TryFormat(digits, out var length, default, CultureInfo.InvariantCulture) || !ContentDetectors.IsCard(digits[..length]))
        {
            return number;
        }

        counts.Add(SensitiveKind.Card);
        var masked = $"{(negative ? "-" : "")}[{MaskingCounts.Name(SensitiveKind.Card)}]";
        // A numeric's fraction stays as it was: 4111111111111111.00 is [card].00.
        return number is decimal fractional && fractional.ToString(CultureInfo.InvariantCulture) is var text && text.IndexOf('.') is >= 0 and var point
            ? masked + text[point..]
            : masked;
    }
}
