using Gatehouse.Enforcement.Classification;

namespace Gatehouse.Tests.Enforcement.Classification;

public sealed class ParseTreeReaderTests
{
    // Fragments of what PostgreSQL 15 prints (without pretty printing, lines broken at spaces) for
    // PREPARE p AS WITH d AS (DELETE FROM n WHERE i = 0 RETURNING i) SELECT peek('a'), count(*) FROM d
    //     WHERE row(i, 1) < row(2, 3) GROUP BY 1 ORDER BY 1
    private const string Prepare = "{QUERY :commandType 6 :querySource 0 :canSetTag true :utilityStmt ?\n:resultRelation 0 :hasModifyingCTE false}";

    private const string Query =
        "{QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <>\n:resultRelation 0 :hasAggs true :hasModifyingCTE true"
        + " :cteList ({COMMONTABLEEXPR :ctename d :ctequery {QUERY :commandType 4 :querySource 0 :canSetTag true :utilityStmt <>"
        + " :jointree {FROMEXPR :quals {OPEXPR :opno 96 :opfuncid\n65 :opresulttype 16}}}})"
        + " :targetList ({TARGETENTRY :expr {FUNCEXPR :funcid 16400 :funcresulttype 25 :funcretset false}} {TARGETENTRY :expr {AGGREF\n:aggfnoid 2803 :aggtype 20}})"
        + " :jointree {FROMEXPR :quals {ROWCOMPAREEXPR :rctype 1 :opnos (o 97\n97) :opfamilies (o 1976 1976)}}"
        + " :groupClause ({SORTGROUPCLAUSE :tleSortGroupRef 1 :eqop 98 :sortop 664 :nulls_first false :hashable true})}";

    [Fact]
    public void Every_function_and_operator_the_tree_names_is_read_with_whether_it_writes()
    {
        var references = ParseTreeReader.Read([Prepare, Query]);
        Assert.Equal([65u, 2803u, 16400u], references.Functions);
        Assert.Equal([96u, 97u, 98u, 664u], references.Operators);
        Assert.True(references.Writes);
        Assert.True(references.Statement);
    }

    [Fact]
    public void A_windows_range_offset_function_and_a_cycle_clauses_operator_are_read()
    {
        // Neither is printed in the plan: a DBA's type with its own in_range or <> would run unvetted.
        var references = ParseTreeReader.Read(["{QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <>"
            + " :cteList ({COMMONTABLEEXPR :ctename t :cycle_clause {CTECYCLECLAUSE :cycle_col_list (\"n\") :cycle_mark_column m :cycle_mark_type 25 :cycle_mark_neop 16700}})"
            + " :windowClause ({WINDOWCLAUSE :name <> :frameOptions 14099 :startInRangeFunc 4133 :endInRangeFunc 0 :inRangeColl 0})}"]);
        Assert.Equal([4133u], references.Functions);
        Assert.Equal([16700u], references.Operators);
    }

    [Fact]
    public void Fields_broken_across_lines_read_whole()
    {
        // Without pretty printing, PostgreSQL breaks its lines at a space, between a field's name and its value too.
        var references = ParseTreeReader.Read(["{QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :targetList ({TARGETENTRY :expr {FUNCEXPR :funcid\n16400 :funcresulttype\n25}} {TARGETENTRY :expr {ROWCOMPAREEXPR :opnos (o 16598 16598\n16598)}})}"]);
        Assert.Equal([16400u], references.Functions);
        Assert.Equal([16598u], references.Operators);
    }

    [Fact]
    public void Only_the_trees_of_the_commands_around_the_statement_are_not_the_statement()
    {
        Assert.False(ParseTreeReader.Read([Prepare, "{QUERY :commandType 6 :querySource 0 :canSetTag true :utilityStmt ? }"]).Statement);
        // Text of the agent's, printed inside a tree, cannot pass for one: only a tree's head says what it is.
        Assert.False(ParseTreeReader.Read([Prepare.Replace(":resultRelation 0", ":aliasname x\r{QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <>")]).Statement);
    }

    [Fact]
    public void A_plain_read_does_not_write_and_a_utility_command_names_nothing()
    {
        var references = ParseTreeReader.Read([Prepare, "{QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :hasModifyingCTE false :targetList ({TARGETENTRY :expr {CONST :consttype 23}})}"]);
        Assert.True(references.Statement);
        Assert.Empty(references.Functions);
        Assert.False(references.Writes);
    }

    [Theory]
    [InlineData(":commandType 3")]
    [InlineData(":commandType 2")]
    [InlineData(":commandType 5")]
    public void Inserts_updates_and_merges_write(string command) => Assert.True(ParseTreeReader.Read([$"{{QUERY {command} :querySource 0 :canSetTag true :utilityStmt <> :hasModifyingCTE false}}"]).Writes);
}
