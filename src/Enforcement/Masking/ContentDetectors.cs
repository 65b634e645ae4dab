using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;

namespace Gatehouse.Enforcement.Masking;

/// <summary>
/// The backstop under column masking: finds sensitive values in any text (result values and error messages alike) and
/// replaces them with a bracketed class name. Each detector validates its candidates (Luhn and IIN for cards, SSA ranges for
/// SSNs, mod-97 for IBANs) so that ordinary numbers pass untouched. Cheap pre-checks skip the regexes for most values.
/// </summary>
public static partial class ContentDetectors
{
    /// <summary>The masked text, or the original string when nothing was found.</summary>
    /// <param name="unmasked">Classes the caller may see (email, ssn, card, phone, iban, secret; or all).</param>
    public static string Mask(string text, MaskingCounts counts, IReadOnlySet<string>? unmasked = null) =>
        text.Length < 6 || unmasked?.Contains("all") == true ? text : MaskFolded(text, counts, unmasked, static shape => shape);

    /// <summary>
    /// As <see cref="Mask(string, MaskingCounts, IReadOnlySet{string}?)"/>, with only the coarse pre-checks (digit count, '@',
    /// letters, markers): every detector those allow runs its regex. For tests, which show the finer pre-checks skip no match.
    /// </summary>
    internal static string MaskWithCoarseChecks(string text, MaskingCounts counts) =>
        text.Length < 6 ? text : MaskFolded(text, counts, null, static shape => shape with { CardRun = int.MaxValue, PhoneRun = int.MaxValue, PlusDigit = true, IbanStart = true, ApiKeyPrefix = true });

    private static string MaskFolded(string text, MaskingCounts counts, IReadOnlySet<string>? unmasked, Func<TextShape, TextShape> checks)
    {
        var shape = TextShape.Of(text);
        if (!shape.Foldable)
        {
            return Mask(text, checks(shape), counts, unmasked);
        }

        // Data is stored in every script and with typographic separators: an SSN in full-width digits, a card grouped with
        // no-break spaces, an email with a full-width @. The detectors read the text folded to ASCII, one character for one;
        // when they find something, the folded text is what is returned, masked (otherwise the text, as it was).
        var folded = string.Create(text.Length, text, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                span[i] = Fold(source[i]);
            }
        });
        var masked = Mask(folded, checks(TextShape.Of(folded)), counts, unmasked);
        return ReferenceEquals(masked, folded) ? text : masked;
    }

    // The ASCII character a digit, dash, space or @ of another script or width stands for; any other character as it is.
    private static char Fold(char c) => c switch
    {
        <= '\x7f' => c,
        '\u00A0' or (>= '\u2000' and <= '\u200A') or '\u202F' or '\u205F' or '\u3000' => ' ',
        (>= '\u2010' and <= '\u2015') or '\u2212' or '\uFE63' or '\uFF0D' => '-',
        '\uFF20' or '\uFE6B' => '@',
        '\uFF0E' => '.',
        '\uFF0B' => '+',
        _ when char.IsDigit(c) => (char)('0' + (int)char.GetNumericValue(c)),
        _ => c,
    };

    private static string Mask(string text, TextShape shape, MaskingCounts counts, IReadOnlySet<string>? unmasked)
    {
        var result = text;
        if (shape.Letters && result.Contains("-----BEGIN", StringComparison.Ordinal))
        {
            result = Replace(PrivateKeyPattern(), result, SensitiveKind.PrivateKey, counts, Any, unmasked);
        }

        if (shape.Letters && result.Contains("eyJ", StringComparison.Ordinal))
        {
            result = Replace(JwtPattern(), result, SensitiveKind.Jwt, counts, Any, unmasked);
        }

        if (shape.Letters && shape.ApiKeyPrefix && result.Length >= 20)
        {
            result = Replace(ApiKeyPattern(), result, SensitiveKind.ApiKey, counts, Any, unmasked);
        }

        if (shape.At)
        {
            result = Replace(EmailPattern(), result, SensitiveKind.Email, counts, Any, unmasked);
        }

        if (shape.Digits >= 12 && shape.CardRun >= 13)
        {
            result = Replace(CardPattern(), result, SensitiveKind.Card, counts, IsCard, unmasked);
        }

        if (shape.Digits >= 12 && shape.IbanStart)
        {
            result = Replace(IbanPattern(), result, SensitiveKind.Iban, counts, IsIban, unmasked);
        }

        if (shape.Digits >= 9 && shape.CardRun >= 9)
        {
            result = Replace(SsnPattern(), result, SensitiveKind.Ssn, counts, IsSsn, unmasked);
        }

        if (shape.Digits >= 8 && shape.PlusDigit)
        {
            result = Replace(InternationalPhonePattern(), result, SensitiveKind.Phone, counts, IsPhone, unmasked);
        }

        if (shape.Digits >= 10 && shape.PhoneRun >= 10)
        {
            result = Replace(NanpPhonePattern(), result, SensitiveKind.Phone, counts, Any, unmasked);
        }

        return result;
    }

    /// <summary>
    /// What one pass over a text tells the detectors, so that a regex runs only where it could match. Each figure is a
    /// necessary condition of its patterns, counting digits as the patterns' <c>\d</c> does (any decimal digit):
    /// <list type="bullet">
    /// <item><see cref="CardRun"/>: the most digits in a run where single spaces or hyphens may part them. A card number
    /// needs 13, an SSN 9.</item>
    /// <item><see cref="PhoneRun"/>: the same, with up to two of <c>space . - ( )</c> between digits. A NANP number needs 10.</item>
    /// <item><see cref="PlusDigit"/>: a '+' followed by a digit, where an international number starts.</item>
    /// <item><see cref="IbanStart"/>: two capital letters followed by two digits, where an IBAN starts.</item>
    /// <item><see cref="ApiKeyPrefix"/>: one of the prefixes every API key pattern starts with.</item>
    /// </list>
    /// <see cref="Digits"/> (ASCII only), <see cref="At"/> and <see cref="Letters"/> are the coarser checks the detectors had
    /// before. A timestamp, a UUID or a hash has many digits but short runs, and now skips the card, SSN and phone regexes.
    /// </summary>
    private readonly record struct TextShape(int Digits, bool At, bool Letters, int CardRun, int PhoneRun, bool PlusDigit, bool IbanStart, bool ApiKeyPrefix)
    {
        /// <summary>Whether some character stands for an ASCII digit, dash, space or @ (see <see cref="Fold"/>).</summary>
        public bool Foldable { get; init; }

        public static TextShape Of(string text)
        {
            var digits = 0;
            bool at = false, letters = false, plusDigit = false, ibanStart = false, foldable = false;
            var card = new DigitRun(maxGap: 1);
            var phone = new DigitRun(maxGap: 2);
            for (var i = 0; i < text.Length; i++)
            {
                var c = text[i];
                foldable |= c > '\x7f' && Fold(c) != c;
                if (IsDigit(c))
                {
                    digits += char.IsAsciiDigit(c) ? 1 : 0;
                    card.Digit();
                    phone.Digit();
                    plusDigit |= i >= 1 && text[i - 1] == '+';
                    ibanStart |= i >= 3 && IsDigit(text[i - 1]) && char.IsAsciiLetterUpper(text[i - 2]) && char.IsAsciiLetterUpper(text[i - 3]);
                }
                else
                {
                    card.Other(c is ' ' or '-');
                    phone.Other(c is ' ' or '.' or '-' or '(' or ')');
                    at |= c == '@';
                    letters |= char.IsAsciiLetter(c);
                }
            }

            var apiKeyPrefix = letters && text.Length >= 20 && text.AsSpan().ContainsAny(ApiKeyPrefixes);
            return new TextShape(digits, at, letters, card.Longest, phone.Longest, plusDigit, ibanStart, apiKeyPrefix) { Foldable = foldable };
        }
    }

    // A digit as the patterns' \d sees it: any decimal digit, not only ASCII.
    private static bool IsDigit(char c) => char.IsAsciiDigit(c) || (c > '\x7f' && char.IsDigit(c));

    /// <summary>The longest run of digits in a text where at most <c>maxGap</c> separators part two digits.</summary>
    private struct DigitRun(int maxGap)
    {
        private int _run;
        private int _gap;

        public int Longest { get; private set; }

        public void Digit()
        {
            _run = _gap <= maxGap ? _run + 1 : 1;
            _gap = 0;
            Longest = Math.Max(Longest, _run);
        }

        public void Other(bool separator)
        {
            if (separator && _run > 0)
            {
                _gap++;
            }
            else
            {
                _run = 0;
                _gap = 0;
            }
        }
    }

    // How each alternative of ApiKeyPattern begins.
    private static readonly SearchValues<string> ApiKeyPrefixes =
        SearchValues.Create(["sk-", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "AIza", "glpat-"], StringComparison.Ordinal);

    /// <summary>Whether a pattern's match really is a value of its kind (a checksum, a range, a length).</summary>
    private delegate bool Validator(ReadOnlySpan<char> candidate);

    // Matches are enumerated without allocating; only a text holding a valid one is copied, with each such match replaced.
    // Like Regex.Replace, a match that fails validation is left as is and the search goes on after it.
    private static string Replace(Regex pattern, string text, SensitiveKind kind, MaskingCounts counts, Validator valid, IReadOnlySet<string>? unmasked)
    {
        if (unmasked?.Contains(MaskingCounts.ClassOf(kind)) == true)
        {
            return text;
        }

        StringBuilder? masked = null;
        var copied = 0;
        foreach (var match in pattern.EnumerateMatches(text))
        {
            if (!valid(text.AsSpan(match.Index, match.Length)))
            {
                continue;
            }

            masked ??= new StringBuilder(text.Length);
            masked.Append(text, copied, match.Index - copied).Append('[').Append(MaskingCounts.Name(kind)).Append(']');
            copied = match.Index + match.Length;
            counts.Add(kind);
        }

        return masked is null ? text : masked.Append(text, copied, text.Length - copied).ToString();
    }

    private static bool Any(ReadOnlySpan<char> candidate) => true;

    // The most digits any validated kind has (a card's 19); a candidate with more is none of them.
    private const int MaxDigits = 19;

    internal static bool IsSsn(ReadOnlySpan<char> candidate)
    {
        Span<char> digits = stackalloc char[MaxDigits];
        if (Digits(candidate, digits) != 9)
        {
            return false;
        }

        var area = int.Parse(digits[..3]);
        var group = int.Parse(digits[3..5]);
        var serial = int.Parse(digits[5..9]);
        return area is not (0 or 666) && area < 900 && group != 0 && serial != 0;
    }

    internal static bool IsCard(ReadOnlySpan<char> candidate)
    {
        Span<char> buffer = stackalloc char[MaxDigits];
        var count = Digits(candidate, buffer);
        if (count is < 13 or > MaxDigits)
        {
            return false;
        }

        var digits = buffer[..count];
        return KnownIssuer(digits) && Luhn(digits);
    }

    private static bool KnownIssuer(ReadOnlySpan<char> d)
    {
        var two = int.Parse(d[..2]);
        var four = int.Parse(d[..4]);
        return d[0] == '4' && d.Length is 13 or 16 or 19                           // Visa
            || (two is >= 51 and <= 55 || four is >= 2221 and <= 2720) && d.Length == 16 // Mastercard
            || two is 34 or 37 && d.Length == 15                                     // American Express
            || (four == 6011 || two == 65 || four / 10 is >= 644 and <= 649) && d.Length is 16 or 19 // Discover
            || four is >= 3528 and <= 3589 && d.Length is >= 16 and <= 19            // JCB
            || (four / 10 is >= 300 and <= 305 || two is 36 or 38) && d.Length is 14 or 16 // Diners
            || two == 62 && d.Length is >= 16 and <= 19;                             // UnionPay
    }

    private static bool Luhn(ReadOnlySpan<char> digits)
    {
        var sum = 0;
        for (var i = 0; i < digits.Length; i++)
        {
            var d = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 1)
            {
                d = d * 2 > 9 ? d * 2 - 9 : d * 2;
            }

            sum += d;
        }

        return sum % 10 == 0;
    }

    internal static bool IsIban(ReadOnlySpan<char> candidate)
    {
        Span<char> buffer = stackalloc char[34];
        var length = 0;
        foreach (var c in candidate)
        {
            if (c == ' ')
            {
                continue;
            }

            if (length == buffer.Length)
            {
                return false;
            }

            buffer[length++] = c;
        }

        if (length < 15)
        {
            return false;
        }

        // The country code and check digits count after the rest; letters become numbers; the remainder mod 97 must be 1.
        var iban = buffer[..length];
        var remainder = 0;
        for (var i = 0; i < length; i++)
        {
            var c = iban[(i + 4) % length];
            var value = char.IsAsciiDigit(c) ? c - '0' : char.IsAsciiLetterUpper(c) ? c - 'A' + 10 : -1;
            if (value < 0)
            {
                return false;
            }

            remainder = value >= 10 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
        }

        return remainder == 1;
    }

    // E.164 allows at most 15 digits after the '+'.
    internal static bool IsPhone(ReadOnlySpan<char> candidate) => Digits(candidate, []) is >= 8 and <= 15;

    /// <summary>How many ASCII digits the text holds; the first of them are copied into <paramref name="into"/>, as many as fit.</summary>
    private static int Digits(ReadOnlySpan<char> text, Span<char> into)
    {
        var count = 0;
        foreach (var c in text)
        {
            if (char.IsAsciiDigit(c))
            {
                if (count < into.Length)
                {
                    into[count] = c;
                }

                count++;
            }
        }

        return count;
    }

    [GeneratedRegex(@"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", RegexOptions.CultureInvariant)]
    private static partial Regex EmailPattern();

    [GeneratedRegex(@"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])", RegexOptions.CultureInvariant)]
    private static partial Regex SsnPattern();

    [GeneratedRegex(@"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)", RegexOptions.CultureInvariant)]
    private static partial Regex CardPattern();

    [GeneratedRegex(@"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}(?![\w])", RegexOptions.CultureInvariant)]
    private static partial Regex InternationalPhonePattern();

    // NANP without a country code: 3-3-4 digits, area and exchange codes starting with 2-9.
    [GeneratedRegex(@"(?<![\w\-])\(?[2-9]\d{2}\)?[ .\-]?[2-9]\d{2}[ .\-]\d{4}(?![\w\-])", RegexOptions.CultureInvariant)]
    private static partial Regex NanpPhonePattern();

    [GeneratedRegex(@"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", RegexOptions.CultureInvariant)]
    private static partial Regex IbanPattern();

    // Without backtracking: every "eyJ" in a long run of base64url characters starts a match, and a backtracking engine
    // scans the rest of the run from each (a 4 MB "eyJeyJ…" took many CPU-minutes). This one's time is linear in the text.
    private static readonly Regex Jwt = new(@"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*", RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);

    private static Regex JwtPattern() => Jwt;

    [GeneratedRegex(@"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----|$)", RegexOptions.CultureInvariant)]
    private static partial Regex PrivateKeyPattern();

    [GeneratedRegex(@"\b(?:sk-[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|glpat-[A-Za-z0-9_\-]{20,})", RegexOptions.CultureInvariant)]
    private static partial Regex ApiKeyPattern();
}
