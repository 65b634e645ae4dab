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

    private static StatementText Classify(string sql, List<SqlToken> tokens)
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

        if (kind == StatementKind.Select && HasTopLevelInto(sql, tokens))
        {
            return new StatementText(text, StatementKind.Ddl, "SELECT INTO");
        }

        return new StatementText(text, kind, keyword);
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

    private static bool HasTopLevelInto(string sql, List<SqlToken> tokens)
    {
        var depth = 0;
        foreach (var t in tokens)
        {
            depth += t.Kind == SqlTokenKind.OpenParen ? 1 : t.Kind == SqlTokenKind.CloseParen ? -1 : 0;
            if (depth == 0 && t.IsKeyword(sql, "INTO"))
            {
                return true;
            }
        }

        return false;
    }
}
