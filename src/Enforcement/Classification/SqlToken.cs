namespace Gatehouse.Enforcement.Classification;

/// <summary>The kinds of token the PostgreSQL lexer distinguishes.</summary>
public enum SqlTokenKind
{
    /// <summary>A bare word: keyword or unquoted identifier.</summary>
    Word,
    QuotedIdentifier,
    String,
    Number,
    Parameter,
    Operator,
    OpenParen,
    CloseParen,
    Semicolon,
    Punctuation,
}

/// <summary>One lexed token: its kind and where it sits in the statement text. Comments and whitespace are not tokens.</summary>
public readonly record struct SqlToken(SqlTokenKind Kind, int Start, int Length)
{
    public string Text(string sql) => sql.Substring(Start, Length);

    /// <summary>An unquoted name as PostgreSQL folds it: ASCII letters to lower case, every other character as it is.</summary>
    public static string FoldCase(string word) => string.Create(word.Length, word, static (span, w) =>
    {
        for (var i = 0; i < w.Length; i++)
        {
            span[i] = char.IsAsciiLetterUpper(w[i]) ? (char)(w[i] | 0x20) : w[i];
        }
    });

    /// <summary>True for a bare word equal to <paramref name="keyword"/> (ASCII case-insensitive, as PostgreSQL folds keywords).</summary>
    public bool IsKeyword(string sql, string keyword) =>
        Kind == SqlTokenKind.Word && Length == keyword.Length && string.Compare(sql, Start, keyword, 0, Length, StringComparison.OrdinalIgnoreCase) == 0;
}

/// <summary>Input the lexer cannot make sense of: unterminated strings or comments, NUL bytes, absurd nesting.</summary>
public sealed class SqlLexException(string message, int position) : Exception(message)
{
    public int Position { get; } = position;
}
