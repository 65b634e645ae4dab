using System.Text.RegularExpressions;

namespace Gatehouse.Enforcement.Classification;

/// <summary>
/// What PostgreSQL resolved a statement to before planning it: the functions it calls (by name, or behind an operator, a
/// cast, an aggregate or a field), the operators it compares and sorts with, and whether it writes.
/// </summary>
public sealed record StatementReferences(IReadOnlyList<uint> Functions, IReadOnlyList<uint> Operators, bool Writes)
{
    public static StatementReferences None { get; } = new([], [], Writes: false) { Statement = true };

    /// <summary>Whether a tree of the statement itself was read, not only those of the utility commands around it.</summary>
    public bool Statement { get; init; }
}

/// <summary>
/// Reads the parse trees PostgreSQL prints with <c>debug_print_parse</c> (the Query nodes of nodeToString): every function and
/// operator identifier in them, and the kind of each query. The planner has not run yet, so nothing is folded away:
/// <c>peek('door')</c> is still a call, where the plan would print only its result.
/// </summary>
public static partial class ParseTreeReader
{
    // FuncExpr, OpExpr (and DistinctExpr, NullIfExpr, ScalarArrayOpExpr), Aggref and WindowFunc name their function; a
    // window's RANGE offset, the in_range support function it calls.
    [GeneratedRegex(@":(?:funcid|opfuncid|aggfnoid|winfnoid|startInRangeFunc|endInRangeFunc) (\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex FunctionIds();

    // Operators: those of expressions, a sort or group clause's, which name no function, and the <> a recursive query's
    // CYCLE clause compares its mark with.
    [GeneratedRegex(@":(?:opno|eqop|sortop|cycle_mark_neop) (\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex OperatorIds();

    // A row comparison's operators: ":opnos (o 97 97)".
    [GeneratedRegex(@":opnos \(o((?: \d+)+)\)", RegexOptions.CultureInvariant)]
    private static partial Regex OperatorLists();

    // CmdType: 2 UPDATE, 3 INSERT, 4 DELETE, 5 MERGE (1 is SELECT, 6 a utility command such as the PREPARE around it).
    [GeneratedRegex(@":commandType [2-5]\b|:hasModifyingCTE true", RegexOptions.CultureInvariant)]
    private static partial Regex Writing();

    // A query that is not a utility command: the statement's own tree (PostgreSQL 15 numbering, where 6 is a utility). Read
    // from the tree's head, which nothing of the agent's text comes before.
    [GeneratedRegex(@"^\{QUERY :commandType [1-5] :querySource \d+ :canSetTag \w+ :utilityStmt <>", RegexOptions.CultureInvariant)]
    private static partial Regex StatementQuery();

    public static StatementReferences Read(IEnumerable<string> trees)
    {
        var functions = new HashSet<uint>();
        var operators = new HashSet<uint>();
        var writes = false;
        var statement = false;
        foreach (var printed in trees)
        {
            // Without pretty printing, PostgreSQL breaks lines (with \n alone) only at a space: joined, every field reads whole.
            var tree = printed.Replace('\n', ' ');
            functions.UnionWith(FunctionIds().Matches(tree).Select(m => Oid(m.Groups[1].Value)));
            operators.UnionWith(OperatorIds().Matches(tree).Select(m => Oid(m.Groups[1].Value)));
            foreach (Match list in OperatorLists().Matches(tree))
            {
                operators.UnionWith(list.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(Oid));
            }

            writes |= Writing().IsMatch(tree);
            statement |= StatementQuery().IsMatch(tree);
        }

        functions.Remove(0);
        operators.Remove(0);
        return new StatementReferences([.. functions.Order()], [.. operators.Order()], writes) { Statement = statement };
    }

    private static uint Oid(string digits) => uint.Parse(digits, System.Globalization.CultureInfo.InvariantCulture);
}
