namespace Gatehouse.Enforcement.Classification;

/// <summary>Finds function calls in the expression texts EXPLAIN VERBOSE prints: a name (optionally schema-qualified) followed by '('.</summary>
public static class FunctionCallReader
{
    // Words that continue a type name of several words, before a modifier: character varying(10), interval day to second(3).
    private static readonly HashSet<string> TypeWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "character", "char", "national", "bit", "varying", "double", "precision", "interval", "time", "timestamp", "with", "without",
        "zone", "year", "month", "day", "hour", "minute", "second", "to",
    };

    public static IEnumerable<FunctionCall> Read(string expression)
    {
        var tokens = SqlLexer.Tokenize(expression);
        for (var i = 0; i + 1 < tokens.Count; i++)
        {
            if (tokens[i + 1].Kind != SqlTokenKind.OpenParen || tokens[i].Kind is not (SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier))
            {
                continue;
            }

            if (IsTypeModifier(expression, tokens, i))
            {
                continue;
            }

            var name = Identifier(expression, tokens[i]);
            string? schema = null;
            if (i >= 2 && tokens[i - 1].Kind == SqlTokenKind.Punctuation && tokens[i - 1].Text(expression) == "." && tokens[i - 2].Kind is SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier)
            {
                schema = Identifier(expression, tokens[i - 2]);
            }

            var text = tokens[i].Text(expression);
            yield return new FunctionCall(schema, name)
            {
                Keyword = schema is null && tokens[i].Kind == SqlTokenKind.Word && text.Any(char.IsAsciiLetterUpper) && !text.Any(char.IsAsciiLetterLower),
            };
        }
    }

    // In "x::numeric(10,2)", "x::character varying(10)" and "XMLSERIALIZE(... AS character varying(10))" the parenthesis holds
    // a type modifier, not arguments. Only the words of a type name may come between the :: (or the AS) and the name:
    // "x::bool THEN f(y)" calls f. A column of XMLTABLE or JSON_TABLE, or a RETURNING clause, names its type without either:
    // an unqualified, unquoted "character(" is that type (a function of that name prints quoted, "character" being a
    // keyword), and so is "varying(" right after "character" or "bit" (a function named varying prints bare: alone, it is one).
    private static bool IsTypeModifier(string text, List<SqlToken> tokens, int i)
    {
        var qualified = i >= 1 && tokens[i - 1].Text(text) == ".";
        if (tokens[i].Kind == SqlTokenKind.Word && !qualified
            && (tokens[i].IsKeyword(text, "character")
                || (tokens[i].IsKeyword(text, "varying") && i >= 1 && tokens[i - 1].Kind == SqlTokenKind.Word
                    && (tokens[i - 1].IsKeyword(text, "character") || tokens[i - 1].IsKeyword(text, "bit")))))
        {
            return true;
        }

        var j = i;
        while (j > 0 && tokens[j - 1].Kind == SqlTokenKind.Word && TypeWords.Contains(tokens[j - 1].Text(text)))
        {
            j--;
        }

        return (j >= 2 && tokens[j - 1].Text(text) == ":" && tokens[j - 2].Text(text) == ":") || (j >= 1 && tokens[j - 1].IsKeyword(text, "AS"));
    }

    // Unquoted names fold as PostgreSQL folds them; quoted ones keep their spelling.
    private static string Identifier(string text, SqlToken token) =>
        token.Kind == SqlTokenKind.QuotedIdentifier
            ? token.Text(text)[1..^1].Replace("\"\"", "\"", StringComparison.Ordinal)
            : SqlToken.FoldCase(token.Text(text));
}
