namespace Gatehouse.Enforcement.Classification;

/// <summary>One statement cut out of the submitted text, with its kind and the keyword that decided it.</summary>
public sealed record StatementText(string Sql, StatementKind Kind, string Keyword)
{
    /// <summary>For EXPLAIN: the statement being explained.</summary>
    public StatementText? Inner { get; init; }

    /// <summary>For EXPLAIN: whether ANALYZE makes it run the inner statement.</summary>
    public bool Analyze { get; init; }

    /// <summary>For UPDATE and DELETE: whether the statement itself (not a CTE inside it) has a WHERE clause.</summary>
    public bool HasWhere { get; init; }

    /// <summary>
    /// UPDATE or DELETE when a WITH query of the statement is one without a WHERE clause of its own
    /// (<c>WITH d AS (DELETE FROM t RETURNING 1) SELECT ...</c>); null otherwise.
    /// </summary>
    public string? UnboundedWithWrite { get; init; }

    /// <summary>Whether an UPDATE or DELETE in it, the statement itself or a WITH query, has no WHERE clause of its own.</summary>
    public bool WritesWithoutWhere => (Kind is StatementKind.Update or StatementKind.Delete && !HasWhere) || UnboundedWithWrite is not null;

    /// <summary>
    /// The functions the text calls by name, read before PostgreSQL plans the statement. The plan alone can miss one: the
    /// planner runs an IMMUTABLE function with constant arguments while planning and prints only its result.
    /// </summary>
    public IReadOnlyList<FunctionCall> NamedFunctions { get; init; } = [];

    /// <summary>
    /// The operator symbols in the text as the server splits them, <c>!=</c> read as <c>&lt;&gt;</c> (<c>OPERATOR(s.###)</c>
    /// gives <c>###</c>); the plan prints a folded one only as its result.
    /// </summary>
    public IReadOnlyList<string> Operators { get; init; } = [];

    /// <summary>Operators the text's words make PostgreSQL look up by name: <c>~~</c> for LIKE, <c>=</c> and <c>&lt;</c> for IN, CASE, ORDER BY.</summary>
    public IReadOnlySet<string> ImpliedOperators { get; init; } = new HashSet<string>();

    /// <summary>Whether the text holds <paramref name="name"/> as a word (folded to lower case, as the server folds it) or quoted.</summary>
    public bool NamesWord(string name)
    {
        foreach (var part in Normalized.Split(' '))
        {
            if (part == name || (part.Length == name.Length + 2 && part[0] == '"' && part[^1] == '"' && part.AsSpan(1, name.Length).SequenceEqual(name)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The tokens without comments or layout, unquoted words in lower case: equal for statements PostgreSQL reads alike.</summary>
    public string Normalized { get; init; } = Sql;
}
