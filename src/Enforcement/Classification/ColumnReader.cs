namespace Gatehouse.Enforcement.Classification;

/// <summary>A column a plan reads from a relation; <see cref="Column"/> is "*" for a whole-row reference.</summary>
public readonly record struct ColumnUse(RelationName Relation, string Column)
{
    public const string WholeRow = "*";

    public override string ToString() => $"{Relation}.{Column}";
}

/// <summary>Finds <c>alias.column</c> and <c>alias.*</c> references in the expression texts EXPLAIN VERBOSE prints.</summary>
public static class ColumnReader
{
    public static IEnumerable<(string Alias, string Column)> Read(string expression)
    {
        var tokens = SqlLexer.Tokenize(expression);
        for (var i = 0; i + 2 < tokens.Count; i++)
        {
            if (tokens[i].Kind is not (SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier)
                || tokens[i + 1].Kind != SqlTokenKind.Punctuation || tokens[i + 1].Text(expression) != ".")
            {
                continue;
            }

            var next = tokens[i + 2];
            // A qualified function name (schema.fn( ) is not a column.
            var isCall = i + 3 < tokens.Count && tokens[i + 3].Kind == SqlTokenKind.OpenParen;
            if (next.Kind is SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier && !isCall)
            {
                yield return (Name(expression, tokens[i]), Name(expression, next));
            }
            else if (next.Kind == SqlTokenKind.Operator && next.Text(expression).StartsWith('*'))
            {
                yield return (Name(expression, tokens[i]), ColumnUse.WholeRow);
            }
        }
    }

    /// <summary>
    /// Unqualified names that could be columns: EXPLAIN VERBOSE leaves column names bare when the statement has a single
    /// range-table entry. Function names, cast types and qualified parts are skipped; keywords may remain (harmless extras).
    /// </summary>
    public static IEnumerable<string> ReadBare(string expression)
    {
        var tokens = SqlLexer.Tokenize(expression);
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            if (token.Kind is not (SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier))
            {
                continue;
            }

            var next = i + 1 < tokens.Count ? tokens[i + 1] : default;
            var nextIsDotOrCall = next.Length > 0 && (next.Kind == SqlTokenKind.OpenParen || next.Text(expression) == ".");
            // A cast is ::type; a single colon is an array slice's, and the name after it is a column ([1:salary]).
            var previousIsDot = i > 0 && tokens[i - 1].Text(expression) == ".";
            var previousIsCast = i > 1 && tokens[i - 1].Text(expression) == ":" && tokens[i - 2].Text(expression) == ":" && tokens[i - 2].Start + 1 == tokens[i - 1].Start;
            if (!nextIsDotOrCall && !previousIsDot && !previousIsCast)
            {
                yield return Name(expression, token);
            }
        }
    }

    private static string Name(string text, SqlToken token) =>
        token.Kind == SqlTokenKind.QuotedIdentifier
            ? token.Text(text)[1..^1].Replace("\"\"", "\"", StringComparison.Ordinal)
            : token.Text(text).ToLowerInvariant();
}
