namespace Gatehouse.Enforcement.Classification;

/// <summary>
/// Finds function calls in SQL text: a name (optionally schema-qualified) followed by '('. Reads both the expression texts
/// EXPLAIN VERBOSE prints and the statement an agent sent.
/// </summary>
public static class FunctionCallReader
{
    public static IEnumerable<FunctionCall> Read(string expression) => Read(expression, SqlLexer.Tokenize(expression));

    /// <summary>The calls among <paramref name="tokens"/>, already lexed from <paramref name="text"/>.</summary>
    public static IEnumerable<FunctionCall> Read(string text, IReadOnlyList<SqlToken> tokens)
    {
        for (var i = 0; i + 1 < tokens.Count; i++)
        {
            if (tokens[i + 1].Kind != SqlTokenKind.OpenParen || tokens[i].Kind is not (SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier))
            {
                continue;
            }

            if (IsCastType(text, tokens, i))
            {
                continue;
            }

            var name = Identifier(text, tokens[i]);
            string? schema = null;
            var nameStart = i;
            if (i >= 2 && tokens[i - 1].Kind == SqlTokenKind.Punctuation && tokens[i - 1].Text(text) == "." && tokens[i - 2].Kind is SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier)
            {
                schema = Identifier(text, tokens[i - 2]);
                nameStart = i - 2;
            }

            if (nameStart > 0 && (tokens[nameStart - 1].IsKeyword(text, "INTO") || tokens[nameStart - 1].IsKeyword(text, "AS")))
            {
                // INSERT INTO t (a, b) names a table, AS x (a, b) an alias with its columns, CAST(v AS numeric(10, 2)) a type.
                continue;
            }

            yield return new FunctionCall(schema, name);
        }
    }

    // In "x::character varying(10)" or "x::numeric(10,2)" the parenthesis holds a type modifier, not arguments.
    private static bool IsCastType(string text, IReadOnlyList<SqlToken> tokens, int i)
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
