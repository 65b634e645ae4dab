using Gatehouse.Enforcement.Execution;

namespace Gatehouse.Enforcement.Masking;

/// <summary>A proposed tag for one column, with the evidence for it (never the sampled values themselves).</summary>
public sealed record ProposedTag(string Column, string Class, string Reason);

/// <summary>
/// Proposes sensitive classes for columns from their names, comments and a sample of their values run through the content
/// detectors. It proposes; a person reviews the YAML it prints.
/// </summary>
public static class ColumnClassifier
{
    private static readonly (string Class, string[] Words)[] NameHints =
    [
        ("email", ["email", "e_mail", "mail"]),
        ("phone", ["phone", "mobile", "tel", "telephone", "fax"]),
        ("ssn", ["ssn", "social_security", "sin", "national_id", "tax_id"]),
        ("card", ["card_number", "card_no", "pan", "credit_card", "cc_number"]),
        ("iban", ["iban", "account_number", "bank_account"]),
        ("name", ["full_name", "first_name", "last_name", "surname", "given_name", "name"]),
        ("address", ["address", "street", "city", "zip", "postcode", "postal_code"]),
        ("secret", ["password", "passwd", "secret", "token", "api_key", "apikey", "private_key"]),
        ("free_text", ["note", "notes", "comment", "comments", "description", "message"]),
    ];

    /// <summary>Share of sampled values a detector must flag before the sample alone proposes a class.</summary>
    public const double SampleThreshold = 0.3;

    /// <param name="samples">Sampled text values of the column (nulls dropped); only counted, never returned.</param>
    public static ProposedTag? Propose(ColumnDescription column, IReadOnlyList<string> samples)
    {
        var reasons = new List<string>();
        string? proposed = null;

        var byName = NameHints.FirstOrDefault(h => h.Words.Any(w => NameMatches(column.Name, w))).Class;
        if (byName is not null)
        {
            proposed = byName;
            reasons.Add($"name '{column.Name}'");
        }

        var comment = column.Comment ?? "";
        var byComment = NameHints.FirstOrDefault(h => comment.Contains(h.Class, StringComparison.OrdinalIgnoreCase)).Class;
        if (byComment is not null || comment.Contains("sensitive", StringComparison.OrdinalIgnoreCase) || comment.Contains("personal", StringComparison.OrdinalIgnoreCase))
        {
            proposed ??= byComment ?? "secret";
            reasons.Add("its comment");
        }

        if (samples.Count > 0)
        {
            var hits = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var sample in samples)
            {
                var counts = new MaskingCounts();
                ContentDetectors.Mask(sample, counts);
                foreach (var kind in counts.ByKind().Keys)
                {
                    hits[kind] = hits.GetValueOrDefault(kind) + 1;
                }
            }

            var best = hits.OrderByDescending(h => h.Value).FirstOrDefault();
            if (best.Key is not null && best.Value >= SampleThreshold * samples.Count)
            {
                var detected = best.Key is "jwt" or "private_key" or "api_key" ? "secret" : best.Key;
                proposed = proposed is null or "free_text" or "name" ? detected : proposed;
                reasons.Add($"{best.Value}/{samples.Count} sampled values look like {best.Key}");
            }
        }

        return proposed is null ? null : new ProposedTag(column.Name, proposed, string.Join("; ", reasons));
    }

    private static bool NameMatches(string column, string word)
    {
        var name = column.ToLowerInvariant();
        return name == word || name.StartsWith(word + "_", StringComparison.Ordinal) || name.EndsWith("_" + word, StringComparison.Ordinal);
    }
}
