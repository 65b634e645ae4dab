namespace Gatehouse.Enforcement.Classification;

/// <summary>Splits submitted SQL into statements and names each statement's kind, using the real lexer.</summary>
public static class StatementReader
{
    private static readonly Dictionary<string, StatementKind> LeadingKeywords = new(StringComparer.OrdinalIgnoreCase)
    {
        ["SELECT"] = StatementKind.Select,
        ["VALUES"] = StatementKind.Select,
        ["TABLE"] = StatementKind.Select,
        ["WITH"] = StatementKind.Select,
        ["INSERT"] = StatementKind.Insert,
        ["UPDATE"] = StatementKind.Update,
        ["DELETE"] = StatementKind.Delete,
        ["MERGE"] = StatementKind.Merge,
        ["CREATE"] = StatementKind.Ddl,
        ["ALTER"] = StatementKind.Ddl,
        ["DROP"] = StatementKind.Ddl,
        ["TRUNCATE"] = StatementKind.Ddl,
        ["COMMENT"] = StatementKind.Ddl,
        ["SECURITY"] = StatementKind.Ddl,
        ["REFRESH"] = StatementKind.Ddl,
        ["IMPORT"] = StatementKind.Ddl,
        ["REASSIGN"] = StatementKind.Dcl,
        ["GRANT"] = StatementKind.Dcl,
        ["REVOKE"] = StatementKind.Dcl,
        ["BEGIN"] = StatementKind.Transaction,
        ["START"] = StatementKind.Transaction,
        ["COMMIT"] = StatementKind.Transaction,
        ["END"] = StatementKind.Transaction,
        ["ROLLBACK"] = StatementKind.Transaction,
        ["ABORT"] = StatementKind.Transaction,
        ["SAVEPOINT"] = StatementKind.Transaction,
        ["RELEASE"] = StatementKind.Transaction,
        ["SET"] = StatementKind.Session,
        ["RESET"] = StatementKind.Session,
        ["DISCARD"] = StatementKind.Session,
        ["COPY"] = StatementKind.Copy,
        ["DO"] = StatementKind.Do,
        ["CALL"] = StatementKind.Call,
        ["EXPLAIN"] = StatementKind.Explain,
        ["PREPARE"] = StatementKind.Prepared,
        ["EXECUTE"] = StatementKind.Prepared,
        ["DEALLOCATE"] = StatementKind.Prepared,
        ["LISTEN"] = StatementKind.Notify,
        ["NOTIFY"] = StatementKind.Notify,
        ["UNLISTEN"] = StatementKind.Notify,
        ["LOCK"] = StatementKind.Lock,
        ["VACUUM"] = StatementKind.Maintenance,
        ["ANALYZE"] = StatementKind.Maintenance,
        ["ANALYSE"] = StatementKind.Maintenance,
        ["CLUSTER"] = StatementKind.Maintenance,
        ["REINDEX"] = StatementKind.Maintenance,
        ["CHECKPOINT"] = StatementKind.Maintenance,
    };

    private static readonly string[] MainVerbs = ["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"];

    /// <summary>The non-empty statements in <paramref name="sql"/>; throws <see cref="SqlLexException"/> on input the lexer rejects.</summary>
    public static IReadOnlyList<StatementText> Read(string sql)
    {
        var tokens = SqlLexer.Tokenize(sql);
        RefuseUnplainExtractUnits(sql, tokens);
        var statements = new List<StatementText>();
        var start = 0;
        for (var i = 0; i <= tokens.Count; i++)
        {
            if (i < tokens.Count && tokens[i].Kind != SqlTokenKind.Semicolon)
            {
                continue;
            }

            if (i > start)
            {
                statements.Add(Classify(sql, tokens.GetRange(start, i - start)));
            }

            start = i + 1;
        }

        return statements;
    }

    /// <summary>
    /// EXPLAIN prints an EXTRACT's unit as it was written, unquoted, so a unit written as a string or quoted name holding a
    /// quote (<c>extract('year FROM id''' from now())</c>, which a CASE can keep from ever running) makes the plan's
    /// text after it read as a string literal up to the next: a column or call there was hidden from the plan readers. No
    /// unit PostgreSQL knows is more than a plain word, so any other is refused here, before anything runs.
    /// </summary>
    private static void RefuseUnplainExtractUnits(string sql, List<SqlToken> tokens)
    {
        // A few names were printed raw too, until PostgreSQL 15.11, 16.7 and 17.3: XMLNAMESPACES(… AS "it's") and SQL/JSON's
        // PASSING … AS "it's" (17). In a statement with either, a name after AS holding a quote is refused, whatever the
        // server; elsewhere ("Today's orders" as a column's alias) such names print quoted.
        var raw = tokens.Any(t => t.Kind == SqlTokenKind.Word && (t.Text(sql).Equals("xmlnamespaces", StringComparison.OrdinalIgnoreCase) || t.Text(sql).Equals("passing", StringComparison.OrdinalIgnoreCase)));
        for (var n = 1; raw && n < tokens.Count; n++)
        {
            var name = tokens[n];
            var text = name.Text(sql);
            if (name.Kind == SqlTokenKind.QuotedIdentifier && tokens[n - 1].Text(sql).Equals("as", StringComparison.OrdinalIgnoreCase)
                && (text[1..^1].Contains('\'', StringComparison.Ordinal) || text[1..^1].Contains('"', StringComparison.Ordinal)))
            {
                throw new SqlLexException(
                    $"the quoted name at position {name.Start + 1} holds a quote; some PostgreSQL versions print such a name (of XMLNAMESPACES or PASSING) in the statement's plan as written, where it could hide what follows it from the gateway. Name it without quotes",
                    name.Start);
            }
        }

        for (var i = 0; i + 2 < tokens.Count; i++)
        {
            if (tokens[i].Kind != SqlTokenKind.Word || tokens[i + 1].Kind != SqlTokenKind.OpenParen
                || !tokens[i].Text(sql).Equals("extract", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var unit = tokens[i + 2];
            var text = unit.Text(sql);
            // A string continued on the next line ('year'\n' FROM id''') is one unit to PostgreSQL and two tokens here: the
            // unit must be followed by FROM (or a comma, the function-call form, whose arguments print quoted).
            var next = i + 3 < tokens.Count ? tokens[i + 3] : default;
            var closed = next.Length > 0 && (next.Text(sql).Equals("from", StringComparison.OrdinalIgnoreCase) || next.Text(sql) == ",");
            var plain = unit.Kind switch
            {
                SqlTokenKind.String or SqlTokenKind.QuotedIdentifier => closed && text.Length > 2 && text[0] == text[^1] && PlainWord(text.AsSpan(1, text.Length - 2)),
                _ => true,
            };
            if (!plain)
            {
                throw new SqlLexException(
                    $"the EXTRACT at position {tokens[i].Start + 1} has the unit {(text.Length > 40 ? text[..40] + "…" : text)}, which is not a plain word; PostgreSQL prints a unit in the statement's plan as written, where such a one could hide what follows it from the gateway. Write the unit as a word: extract(year from …)",
                    unit.Start);
            }
        }

        static bool PlainWord(ReadOnlySpan<char> word)
        {
            foreach (var c in word)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c != '_')
                {
                    return false;
                }
            }

            return word.Length > 0 && !char.IsAsciiDigit(word[0]);
        }
    }

    private static StatementText Classify(string sql, List<SqlToken> tokens) =>
        ClassifyKind(sql, tokens) with { Normalized = Normalize(sql, tokens) };

    // PostgreSQL folds only ASCII letters in unquoted names: Äpeek and äpeek are different functions, and must not share a
    // cached classification.
    private static string Normalize(string sql, List<SqlToken> tokens) =>
        string.Join(' ', tokens.Select(t => t.Kind == SqlTokenKind.Word ? SqlToken.FoldCase(t.Text(sql)) : t.Text(sql)));

    private static StatementText ClassifyKind(string sql, List<SqlToken> tokens)
    {
        var text = sql[tokens[0].Start..(tokens[^1].Start + tokens[^1].Length)];
        var first = tokens.FirstOrDefault(t => t.Kind != SqlTokenKind.OpenParen);
        if (first.Length == 0 || first.Kind != SqlTokenKind.Word)
        {
            return new StatementText(text, StatementKind.Unknown, first.Length == 0 ? "(" : first.Text(sql));
        }

        var keyword = first.Text(sql).ToUpperInvariant();
        if (!LeadingKeywords.TryGetValue(keyword, out var kind))
        {
            return new StatementText(text, StatementKind.Unknown, keyword);
        }

        if (keyword == "WITH")
        {
            (kind, keyword) = MainVerbAfterWith(sql, tokens);
        }

        if (kind == StatementKind.Select && HasTopLevel(sql, tokens, "INTO"))
        {
            return new StatementText(text, StatementKind.Ddl, "SELECT INTO");
        }

        if (kind == StatementKind.Explain)
        {
            return Explain(sql, tokens, text);
        }

        return new StatementText(text, kind, keyword)
        {
            HasWhere = HasTopLevel(sql, tokens, "WHERE"),
            UnboundedWithWrite = UnboundedWithWrite(sql, tokens),
            Effects = Effects(sql, tokens, kind),
            UnboundedMergeAction = kind == StatementKind.Merge ? UnboundedMergeAction(sql, tokens) : null,
        };
    }

    // WHEN NOT MATCHED BY SOURCE THEN UPDATE or DELETE, at the statement's depth, takes every row of the target that the
    // source does not name: a MERGE's "no WHERE". An AND condition between SOURCE and THEN bounds it.
    private static string? UnboundedMergeAction(string sql, List<SqlToken> tokens)
    {
        var depth = 0;
        for (var i = 0; i + 2 < tokens.Count; i++)
        {
            depth += tokens[i].Kind == SqlTokenKind.OpenParen ? 1 : tokens[i].Kind == SqlTokenKind.CloseParen ? -1 : 0;
            if (depth == 0 && i >= 3 && tokens[i].IsKeyword(sql, "SOURCE") && tokens[i - 1].IsKeyword(sql, "BY") && tokens[i - 2].IsKeyword(sql, "MATCHED")
                && tokens[i - 3].IsKeyword(sql, "NOT") && tokens[i + 1].IsKeyword(sql, "THEN")
                && (tokens[i + 2].IsKeyword(sql, "UPDATE") || tokens[i + 2].IsKeyword(sql, "DELETE")))
            {
                return tokens[i + 2].Text(sql).ToUpperInvariant();
            }
        }

        return null;
    }

    // A MERGE's actions each follow a THEN of its own WHEN clauses, at the statement's depth (a CASE's THEN there may add one
    // it does not take, never hide one); an upsert's UPDATE follows the DO of its ON CONFLICT, the only DO at that depth.
    private static List<StatementKind> Effects(string sql, List<SqlToken> tokens, StatementKind kind)
    {
        var (after, verbs) = kind switch
        {
            StatementKind.Merge => ("THEN", new[] { "INSERT", "UPDATE", "DELETE" }),
            StatementKind.Insert => ("DO", new[] { "UPDATE" }),
            _ => ("", []),
        };
        var effects = new List<StatementKind>();
        if (verbs.Length == 0)
        {
            return effects;
        }

        var depth = 0;
        for (var i = 0; i + 1 < tokens.Count; i++)
        {
            depth += tokens[i].Kind == SqlTokenKind.OpenParen ? 1 : tokens[i].Kind == SqlTokenKind.CloseParen ? -1 : 0;
            if (depth == 0 && tokens[i].IsKeyword(sql, after) && verbs.FirstOrDefault(v => tokens[i + 1].IsKeyword(sql, v)) is { } verb
                && LeadingKeywords[verb] is var effect && !effects.Contains(effect))
            {
                effects.Add(effect);
            }
        }

        return effects;
    }

    // A WITH query's body opens with its verb right after a parenthesis: AS ( DELETE ..., AS MATERIALIZED ( UPDATE ....
    // Elsewhere UPDATE and DELETE follow a keyword (FOR UPDATE, DO UPDATE, THEN DELETE, ON DELETE), never a parenthesis.
    private static string? UnboundedWithWrite(string sql, List<SqlToken> tokens)
    {
        // One pass, whatever the nesting: each open write waits for a WHERE at its own depth before the parenthesis that closes it.
        var open = new Stack<(int Depth, string Verb, bool Bounded)>();
        var depth = 0;
        for (var i = 0; i < tokens.Count; i++)
        {
            depth += tokens[i].Kind == SqlTokenKind.OpenParen ? 1 : tokens[i].Kind == SqlTokenKind.CloseParen ? -1 : 0;
            while (open.TryPeek(out var closed) && depth < closed.Depth)
            {
                if (!open.Pop().Bounded)
                {
                    return closed.Verb;
                }
            }

            if (i > 0 && tokens[i - 1].Kind == SqlTokenKind.OpenParen && (tokens[i].IsKeyword(sql, "UPDATE") || tokens[i].IsKeyword(sql, "DELETE")))
            {
                open.Push((depth, tokens[i].Text(sql).ToUpperInvariant(), false));
            }
            else if (open.TryPeek(out var innermost) && depth == innermost.Depth && tokens[i].IsKeyword(sql, "WHERE"))
            {
                open.Push(open.Pop() with { Bounded = true });
            }
        }

        return open.FirstOrDefault(w => !w.Bounded).Verb;
    }

    // WITH a AS (...), b AS (...) <verb>: the verb is the first main keyword at depth 0 that is not a CTE name.
    private static (StatementKind, string) MainVerbAfterWith(string sql, List<SqlToken> tokens)
    {
        var depth = 0;
        for (var i = 1; i < tokens.Count; i++)
        {
            var t = tokens[i];
            depth += t.Kind == SqlTokenKind.OpenParen ? 1 : t.Kind == SqlTokenKind.CloseParen ? -1 : 0;
            if (depth != 0 || t.Kind != SqlTokenKind.Word)
            {
                continue;
            }

            var followedByAs = i + 1 < tokens.Count && (tokens[i + 1].IsKeyword(sql, "AS") || tokens[i + 1].Kind == SqlTokenKind.OpenParen);
            var verb = MainVerbs.FirstOrDefault(v => t.IsKeyword(sql, v));
            if (verb is not null && !followedByAs)
            {
                return (LeadingKeywords[verb], "WITH " + verb);
            }
        }

        return (StatementKind.Unknown, "WITH");
    }

    // EXPLAIN [ ( options ) | ANALYZE | VERBOSE ...] statement
    private static StatementText Explain(string sql, List<SqlToken> tokens, string text)
    {
        var i = 1;
        var analyze = false;
        if (i < tokens.Count && tokens[i].Kind == SqlTokenKind.OpenParen)
        {
            var close = tokens.FindIndex(i, t => t.Kind == SqlTokenKind.CloseParen);
            analyze = tokens.Skip(i).Take(close < 0 ? 0 : close - i).Any(t => t.IsKeyword(sql, "ANALYZE") || t.IsKeyword(sql, "ANALYSE"));
            i = close < 0 ? tokens.Count : close + 1;
        }

        while (i < tokens.Count && (tokens[i].IsKeyword(sql, "ANALYZE") || tokens[i].IsKeyword(sql, "ANALYSE") || tokens[i].IsKeyword(sql, "VERBOSE")))
        {
            analyze |= !tokens[i].IsKeyword(sql, "VERBOSE");
            i++;
        }

        // PostgreSQL cannot explain an EXPLAIN, so one is not read further: read one level per EXPLAIN word, as it was, a
        // statement of a few thousand of them took the stack (a crash) and held a copy of itself per level.
        var rest = tokens.GetRange(i, tokens.Count - i);
        var inner = rest.FirstOrDefault(t => t.Kind != SqlTokenKind.OpenParen) is { Length: > 0 } head && head.IsKeyword(sql, "EXPLAIN")
            ? new StatementText(sql[rest[0].Start..(rest[^1].Start + rest[^1].Length)], StatementKind.Unknown, "EXPLAIN")
            : rest.Count > 0 ? Classify(sql, rest) : null;
        return new StatementText(text, StatementKind.Explain, "EXPLAIN") { Inner = inner, Analyze = analyze };
    }

    private static bool HasTopLevel(string sql, List<SqlToken> tokens, string keyword)
    {
        var depth = 0;
        foreach (var t in tokens)
        {
            depth += t.Kind == SqlTokenKind.OpenParen ? 1 : t.Kind == SqlTokenKind.CloseParen ? -1 : 0;
            if (depth == 0 && t.IsKeyword(sql, keyword))
            {
                return true;
            }
        }

        return false;
    }
}
