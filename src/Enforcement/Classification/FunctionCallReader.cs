namespace Gatehouse.Enforcement.Classification;

/// <summary>Finds function calls in the expression texts EXPLAIN VERBOSE prints: a name (optionally schema-qualified) followed by '('.</summary>
public static class FunctionCallReader
{
    public static IEnumerable<FunctionCall> Read(string expression)
    {
        var tokens = SqlLexer.Tokenize(expression);
        for (var i = 0; i + 1 < tokens.Count; i++)
        {
            if (tokens[i + 1].Kind != SqlTokenKind.OpenParen || tokens[i].Kind is not (SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier))
            {
                continue;
            }

            if (IsCastType(expression, tokens, i))
            {
                continue;
            }

            var name = Identifier(expression, tokens[i]);
            string? schema = null;
            if (i >= 2 && tokens[i - 1].Kind == SqlTokenKind.Punctuation && tokens[i - 1].Text(expression) == "." && tokens[i - 2].Kind is SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier)
            {
                schema = Identifier(expression, tokens[i - 2]);
            }

            yield return new FunctionCall(schema, name);
        }
    }

    // In "x::character varying(10)" or "x::numeric(10,2)" the parenthesis holds a type modifier, not arguments.
    private static bool IsCastType(string text, List<SqlToken> tokens, int i)
    {
        var j = i;
        while (j > 0 && tokens[j - 1].Kind == SqlTokenKind.Word)
        {
            j--;
        }

        return j >= 2 && tokens[j - 1].Text(text) == ":" && tokens[j - 2].Text(text) == ":";
    }

    // Unquoted names fold to lower case, as PostgreSQL folds them; quoted ones keep their spelling.
    private static string Identifier(string text, SqlToken token) =>
        token.Kind == SqlTokenKind.QuotedIdentifier
            ? token.Text(text)[1..^1].Replace("\"\"", "\"", StringComparison.Ordinal)
            : token.Text(text).ToLowerInvariant();
}
