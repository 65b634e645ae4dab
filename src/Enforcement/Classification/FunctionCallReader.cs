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

            if (nameStart > 0 && (tokens[nameStart - 1].IsKeyword(text, "INTO") || tokens[nameStart - 1].IsKeyword(text, "AS")
                || tokens[nameStart - 1].IsKeyword(text, "WITH") || tokens[nameStart - 1].IsKeyword(text, "RECURSIVE")))
            {
                // INSERT INTO t (a, b) names a table, AS x (a, b) an alias with its columns, CAST(v AS numeric(10, 2)) a type,
                // WITH t (a, b) AS (...) a WITH query with its columns.
                continue;
            }

            if (schema is null && tokens[i].Kind == SqlTokenKind.Word && name is "cube" or "rollup" && InGroupBy(text, tokens, i))
            {
                // GROUP BY CUBE (a, b) groups; the cube extension's function is called elsewhere, or as "cube"(...).
                continue;
            }

            yield return new FunctionCall(schema, name);
        }
    }

    /// <summary>
    /// Names written as fields of a parenthesized value, <c>(t.address).city</c>: PostgreSQL calls a function of that name on
    /// the value when no field has it. Only for an agent's text, where a name no function has is left alone.
    /// </summary>
    public static IEnumerable<FunctionCall> FieldNames(string text, IReadOnlyList<SqlToken> tokens)
    {
        for (var i = 2; i < tokens.Count; i++)
        {
            if (tokens[i].Kind is SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier && tokens[i - 1].Text(text) == "." && tokens[i - 2].Kind == SqlTokenKind.CloseParen)
            {
                yield return new FunctionCall(null, Identifier(text, tokens[i]));
            }
        }
    }

    private static readonly HashSet<string> Clauses = new(StringComparer.OrdinalIgnoreCase)
    {
        "select", "from", "where", "having", "order", "window", "limit", "offset", "fetch", "for", "returning", "set", "values", "on",
        "union", "intersect", "except",
    };

    // Whether the name at i is an item of a GROUP BY list: GROUP BY comes before it at its own depth, with no other clause between.
    private static bool InGroupBy(string text, IReadOnlyList<SqlToken> tokens, int i)
    {
        var depth = 0;
        for (var j = i - 1; j > 0; j--)
        {
            depth += tokens[j].Kind == SqlTokenKind.CloseParen ? 1 : tokens[j].Kind == SqlTokenKind.OpenParen ? -1 : 0;
            if (depth < 0)
            {
                // Inside GROUP BY GROUPING SETS (...) or another CUBE's list, the enclosing list decides.
                depth = 0;
                continue;
            }

            if (depth == 0 && tokens[j].IsKeyword(text, "BY"))
            {
                return tokens[j - 1].IsKeyword(text, "GROUP");
            }

            if (depth == 0 && tokens[j].Kind == SqlTokenKind.Word && Clauses.Contains(tokens[j].Text(text)))
            {
                return false;
            }
        }

        return false;
    }

    // Words that continue a type name of several words, before a modifier: character varying(10), interval day to second(3).
    private static readonly HashSet<string> TypeWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "character", "char", "national", "bit", "varying", "double", "precision", "interval", "time", "timestamp", "with", "without",
        "zone", "year", "month", "day", "hour", "minute", "second", "to",
    };

    // In "x::numeric(10,2)" or "x::character varying(10)" the parenthesis holds a type modifier, not arguments. Only the words
    // of a type name may come between the :: and the name: "x::bool THEN f(y)" calls f.
    private static bool IsCastType(string text, IReadOnlyList<SqlToken> tokens, int i)
    {
        var j = i;
        while (j > 0 && tokens[j - 1].Kind == SqlTokenKind.Word && TypeWords.Contains(tokens[j - 1].Text(text)))
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
