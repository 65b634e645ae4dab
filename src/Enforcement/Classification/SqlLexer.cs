namespace Gatehouse.Enforcement.Classification;

/// <summary>
/// A PostgreSQL lexer: enough of the real grammar (nested comments, E'' and U&amp;'' strings, dollar quoting,
/// quoted identifiers, parameters) that statement boundaries and leading keywords are found where the server finds them.
/// </summary>
public static class SqlLexer
{
    /// <summary>Nested block comments deeper than this are refused rather than followed.</summary>
    public const int MaxCommentDepth = 100;

    public static List<SqlToken> Tokenize(string sql)
    {
        var tokens = new List<SqlToken>();
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            if (c == '\0')
            {
                throw new SqlLexException($"the statement contains a NUL byte at position {i + 1}", i);
            }

            if (IsSpace(c))
            {
                i++;
            }
            else if (c == '-' && Peek(sql, i + 1) == '-')
            {
                i = SkipLineComment(sql, i);
            }
            else if (c == '/' && Peek(sql, i + 1) == '*')
            {
                i = SkipBlockComment(sql, i);
            }
            else if (IsOperatorChar(c))
            {
                var end = EndOfOperator(sql, i, out var runEnd);
                tokens.Add(new SqlToken(SqlTokenKind.Operator, i, end - i));

                // What was cut off the run's end are + and - signs, each an operator of its own: the server scans each again
                // from where the last stopped, which would take quadratic time on a long run of signs.
                for (i = end; i < runEnd; i++)
                {
                    tokens.Add(new SqlToken(SqlTokenKind.Operator, i, 1));
                }
            }
            else
            {
                var token = ReadToken(sql, i);
                tokens.Add(token);
                i = token.Start + token.Length;
            }
        }

        return tokens;
    }

    private static SqlToken ReadToken(string sql, int i)
    {
        var c = sql[i];
        var next = Peek(sql, i + 1);
        switch (c)
        {
            case '\'':
                return new SqlToken(SqlTokenKind.String, i, EndOfQuoted(sql, i, '\'', backslashEscapes: false) - i);
            case '"':
                return new SqlToken(SqlTokenKind.QuotedIdentifier, i, EndOfQuoted(sql, i, '"', backslashEscapes: false) - i);
            case 'e' or 'E' when next == '\'':
                return new SqlToken(SqlTokenKind.String, i, EndOfEscapeString(sql, i + 1) - i);
            case 'b' or 'B' or 'x' or 'X' or 'n' or 'N' when next == '\'':
                return new SqlToken(SqlTokenKind.String, i, EndOfQuoted(sql, i + 1, '\'', backslashEscapes: false) - i);
            case 'u' or 'U' when next == '&' && Peek(sql, i + 2) == '"':
                // Its escapes (and a UESCAPE clause after it) would have to be decoded as the server does before the name could
                // be checked; nothing needs this spelling of a name.
                throw new SqlLexException($"a Unicode-escaped identifier (U&\"...\") at position {i + 1} is not accepted: write the name itself, quoted if need be", i);
            case 'u' or 'U' when next == '&' && Peek(sql, i + 2) == '\'':
                return new SqlToken(SqlTokenKind.String, i, EndOfQuoted(sql, i + 2, '\'', backslashEscapes: false) - i);
            case '$' when char.IsAsciiDigit(next):
                return new SqlToken(SqlTokenKind.Parameter, i, EndWhile(sql, i + 1, char.IsAsciiDigit) - i);
            case '$' when TryDollarTag(sql, i, out var tagLength):
                return new SqlToken(SqlTokenKind.String, i, EndOfDollarQuoted(sql, i, tagLength) - i);
            case '(':
                return new SqlToken(SqlTokenKind.OpenParen, i, 1);
            case ')':
                return new SqlToken(SqlTokenKind.CloseParen, i, 1);
            case ';':
                return new SqlToken(SqlTokenKind.Semicolon, i, 1);
            case ',' or '[' or ']' or ':' or '.' when !(c == '.' && char.IsAsciiDigit(next)):
                return new SqlToken(SqlTokenKind.Punctuation, i, 1);
        }

        if (char.IsAsciiDigit(c) || c == '.')
        {
            return new SqlToken(SqlTokenKind.Number, i, EndWhile(sql, i, ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_') - i);
        }

        if (IsIdentifierStart(c))
        {
            return new SqlToken(SqlTokenKind.Word, i, EndWhile(sql, i, IsIdentifierPart) - i);
        }

        return new SqlToken(SqlTokenKind.Punctuation, i, 1);
    }

    private static char Peek(string sql, int i) => i < sql.Length ? sql[i] : '\0';

    private static bool IsIdentifierStart(char c) => char.IsAsciiLetter(c) || c == '_' || c >= '\u0080';

    private static bool IsIdentifierPart(char c) => IsIdentifierStart(c) || char.IsAsciiDigit(c) || c == '$';

    private static bool IsOperatorChar(char c) => "+-*/<>=~!@#%^&|`?".Contains(c);

    // PostgreSQL's whitespace, and no other: any other character from U+0080 up is part of an identifier to the server, so a
    // no-break space before $$ must not open a dollar quote here that the server does not see.
    private static bool IsSpace(char c) => c is ' ' or '\t' or '\n' or '\r' or '\f' or '\v';

    private static int EndWhile(string sql, int i, Func<char, bool> predicate)
    {
        while (i < sql.Length && predicate(sql[i]))
        {
            i++;
        }

        return i;
    }

    // As in PostgreSQL's scanner: an operator stops where a comment starts, and one of several characters cannot end in + or -
    // unless it holds a character SQL's own operators lack (so "=-1" is = and -1, while "@-" is one operator).
    // Every character the trim gives back, up to runEnd, is a + or - that ends the run; scanned again, each would be an
    // operator of one character (a comment start inside the run would have ended it).
    private static int EndOfOperator(string sql, int i, out int runEnd)
    {
        var start = i;
        while (i < sql.Length && IsOperatorChar(sql[i]))
        {
            if (i > start && ((sql[i] == '-' && Peek(sql, i + 1) == '-') || (sql[i] == '/' && Peek(sql, i + 1) == '*')))
            {
                break;
            }

            i++;
        }

        runEnd = i;
        if (i - start > 1 && sql[i - 1] is '+' or '-' && sql.AsSpan(start, i - start - 1).IndexOfAny("~!@#^&|`?%") < 0)
        {
            while (i - start > 1 && sql[i - 1] is '+' or '-')
            {
                i--;
            }
        }

        return i;
    }

    private static int SkipLineComment(string sql, int i)
    {
        // A carriage return ends it too, as in PostgreSQL's scanner.
        var end = sql.AsSpan(i).IndexOfAny('\n', '\r');
        return end < 0 ? sql.Length : i + end + 1;
    }

    private static int SkipBlockComment(string sql, int start)
    {
        var depth = 0;
        var i = start;
        while (i < sql.Length)
        {
            if (sql[i] == '/' && Peek(sql, i + 1) == '*')
            {
                if (++depth > MaxCommentDepth)
                {
                    throw new SqlLexException($"block comments are nested more than {MaxCommentDepth} deep", start);
                }

                i += 2;
            }
            else if (sql[i] == '*' && Peek(sql, i + 1) == '/')
            {
                i += 2;
                if (--depth == 0)
                {
                    return i;
                }
            }
            else
            {
                i++;
            }
        }

        throw new SqlLexException($"a block comment starting at position {start + 1} is never closed with */", start);
    }

    // E'a' followed by a newline and 'b' is one string, E'ab', and its second part takes backslash escapes too: read as a new
    // plain string, '\'' would swallow what the server reads as code.
    private static int EndOfEscapeString(string sql, int openQuote)
    {
        var end = EndOfQuoted(sql, openQuote, '\'', backslashEscapes: true);
        while (Continuation(sql, end) is { } next)
        {
            end = EndOfQuoted(sql, next, '\'', backslashEscapes: true);
        }

        return end;
    }

    // Where a string continues after position i, as PostgreSQL's scanner has it: blanks, a newline, then any whitespace and
    // -- comments, then a quote. Null when it does not.
    private static int? Continuation(string sql, int i)
    {
        while (i < sql.Length && (sql[i] is ' ' or '\t' or '\f' or '\v' || (sql[i] == '-' && Peek(sql, i + 1) == '-')))
        {
            // A comment here runs to the newline, which stays to be found below.
            i = sql[i] == '-' ? SkipLineComment(sql, i) - 1 : i + 1;
        }

        if (i >= sql.Length || sql[i] is not ('\n' or '\r'))
        {
            return null;
        }

        while (i < sql.Length && (IsSpace(sql[i]) || (sql[i] == '-' && Peek(sql, i + 1) == '-')))
        {
            i = sql[i] == '-' ? SkipLineComment(sql, i) : i + 1;
        }

        return i < sql.Length && sql[i] == '\'' ? i : null;
    }

    private static int EndOfQuoted(string sql, int openQuote, char quote, bool backslashEscapes)
    {
        var i = openQuote + 1;
        while (i < sql.Length)
        {
            var c = sql[i];
            if (backslashEscapes && c == '\\')
            {
                i += 2;
            }
            else if (c == quote)
            {
                if (Peek(sql, i + 1) != quote)
                {
                    return i + 1;
                }

                i += 2;
            }
            else
            {
                i++;
            }
        }

        var what = quote == '"' ? "quoted identifier" : "string";
        throw new SqlLexException($"a {what} starting at position {openQuote + 1} is never closed with {quote}", openQuote);
    }

    private static bool TryDollarTag(string sql, int i, out int tagLength)
    {
        // $tag$ where tag is empty or an identifier without a leading digit.
        var j = i + 1;
        if (j < sql.Length && sql[j] != '$' && !(IsIdentifierStart(sql[j]) && sql[j] != '$'))
        {
            tagLength = 0;
            return false;
        }

        while (j < sql.Length && sql[j] != '$' && IsIdentifierPart(sql[j]))
        {
            j++;
        }

        tagLength = j - i + 1;
        return j < sql.Length && sql[j] == '$';
    }

    private static int EndOfDollarQuoted(string sql, int start, int tagLength)
    {
        var tag = sql.AsSpan(start, tagLength);
        var close = sql.AsSpan(start + tagLength).IndexOf(tag, StringComparison.Ordinal);
        if (close < 0)
        {
            throw new SqlLexException($"a dollar-quoted string starting at position {start + 1} is never closed with {tag}", start);
        }

        return start + tagLength + close + tagLength;
    }
}
