using System.Text.Json;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Classification;

/// <summary>
/// Walks the whole tree of an <c>EXPLAIN (VERBOSE, FORMAT JSON)</c> document, subplans and CTEs included: relations read and
/// written, and every function called in any expression (outputs, filters, join and sort keys, function scans).
/// </summary>
public static class PlanReader
{
    // Properties that hold names, not expressions; everything else with text is read for function calls.
    private static readonly HashSet<string> NameProperties = new(StringComparer.Ordinal)
    {
        "Node Type", "Relation Name", "Schema", "Alias", "Operation", "Strategy", "Parent Relationship", "Subplan Name", "CTE Name",
        "Join Type", "Index Name", "Scan Direction", "Partial Mode", "Sort Method", "Sort Space Type", "Command", "Function Name",
        "Conflict Resolution", "Conflict Arbiter Indexes", "Async Capable",
    };

    /// <summary>
    /// The deepest EXPLAIN output read: each plan level is two JSON levels, and a 32-table join or 30 nested subqueries
    /// already pass the 64 a JSON reader takes by default. Deeper than this, the statement is refused as unreadable.
    /// </summary>
    public const int MaxPlanJsonDepth = 1024;

    private static readonly JsonDocumentOptions PlanJson = new() { MaxDepth = MaxPlanJsonDepth };

    private static JsonDocument Parse(string explainJson)
    {
        try
        {
            return JsonDocument.Parse(explainJson, PlanJson);
        }
        catch (JsonException e)
        {
            throw new FormatException($"the statement's plan nests more than {MaxPlanJsonDepth / 2} levels deep, past what the gateway reads", e);
        }
    }

    /// <summary>Whether some node of the plan left partitions out as the plan started (<c>Subplans Removed</c>).</summary>
    public static bool LeftPartitionsOut(string explainJson)
    {
        using var document = Parse(explainJson);
        return Any(document.RootElement);

        static bool Any(JsonElement element) => element.ValueKind switch
        {
            JsonValueKind.Object => PrunedAsItStarted(element) || element.EnumerateObject().Any(p => Any(p.Value)),
            JsonValueKind.Array => element.EnumerateArray().Any(Any),
            _ => false,
        };
    }

    private static bool PrunedAsItStarted(JsonElement node) =>
        node.TryGetProperty("Subplans Removed", out var removed) && removed.ValueKind == JsonValueKind.Number && removed.GetInt32() > 0;

    public static PlanFacts Read(string explainJson)
    {
        using var document = Parse(explainJson);
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Array && root.GetArrayLength() == 0)
        {
            // EXPLAIN's JSON for "Query rewrites to nothing".
            throw new Execution.DatabaseException(Execution.DatabaseFailure.Rejected, "PostgreSQL rewrites this statement to nothing (a DO INSTEAD NOTHING rule on what it names), so it would change nothing; it is refused rather than reported as done");
        }

        if (root.ValueKind != JsonValueKind.Array || root.EnumerateArray().Any(p => !p.TryGetProperty("Plan", out _)))
        {
            throw new FormatException("the EXPLAIN output has no plan");
        }

        // A rewrite rule (DO ALSO) makes one statement several, each with its plan: all of them are what the statement does.
        var plans = root.EnumerateArray().Select(p => p.GetProperty("Plan")).ToList();
        var relations = new List<RelationAccess>();
        var functions = new List<FunctionCall>();
        var references = new List<(string Alias, string Column)>();
        var bare = new List<string>();
        var aliases = new List<(string Alias, RelationName Relation)>();
        var returned = new List<(RelationName Target, string Alias, string Column)>();
        var writeRows = 0.0;
        var writers = new List<string>();
        var unprinted = new List<RelationName>();
        var unfiltered = new List<RelationName>();
        foreach (var plan in plans)
        {
            Walk(plan, new Collected(relations, functions, references, bare, aliases, returned, writers, unprinted, unfiltered), ref writeRows);
        }

        // The statement's own plan: for an UPDATE or DELETE with rules, PostgreSQL lists the rules' actions first.
        var main = plans[^1];
        return new PlanFacts(relations.Distinct().ToList(), functions.Distinct().ToList(), plans.Max(Rows), writeRows)
        {
            Columns = Resolve(references, bare, aliases, returned),
            EstimatedCost = plans.Sum(p => p.TryGetProperty("Total Cost", out var cost) && cost.TryGetDouble(out var c) ? c : 0),
            Writers = writers.Count,
            WriteOperations = writers.Distinct().ToList(),
            UnprintedTargetReads = unprinted.Distinct().ToList(),
            UnfilteredWrites = unfiltered.Distinct().ToList(),
            Outputs = main.TryGetProperty("Output", out var output) && output.ValueKind == JsonValueKind.Array
                ? output.EnumerateArray().Where(o => o.ValueKind == JsonValueKind.String).Select(o => o.GetString()!).ToList()
                : [],
        };
    }

    /// <summary>What the walk gathers from every node.</summary>
    private sealed record Collected(
        List<RelationAccess> Relations,
        List<FunctionCall> Functions,
        List<(string Alias, string Column)> References,
        List<string> Bare,
        List<(string Alias, RelationName Relation)> Aliases,
        List<(RelationName Target, string Alias, string Column)> Returned,
        List<string> Writers,
        List<RelationName> Unprinted,
        List<RelationName> Unfiltered);

    // An alias used for several relations in one plan maps to all of them: a reference is charged to each (fail closed).
    // With a single relation, EXPLAIN prints its columns unqualified: every bare name is charged to that relation.
    // What a write's RETURNING reads of the row it changed is printed by the name RETURNING gives it: from PostgreSQL 18,
    // old.col and new.col, or the names of RETURNING WITH (OLD AS o, NEW AS n), which the plan does not say and which may
    // be the alias of another relation in the statement too. So every qualified reference in the write's output is charged
    // to the written table as well (fail closed): a RETURNING of another source's column named like a tagged column of the
    // written table is refused in overlay mode.
    private static List<ColumnUse> Resolve(
        List<(string Alias, string Column)> references,
        List<string> bare,
        List<(string Alias, RelationName Relation)> aliases,
        List<(RelationName Target, string Alias, string Column)> returned)
    {
        var uses = references.SelectMany(r => aliases.Where(a => a.Alias == r.Alias).Select(a => new ColumnUse(a.Relation, r.Column)))
            .Concat(returned.Select(r => new ColumnUse(r.Target, r.Column)));
        var relations = aliases.Select(a => a.Relation).Distinct().ToList();
        if (relations.Count == 1)
        {
            uses = uses.Concat(bare.Select(b => new ColumnUse(relations[0], b)));
        }

        return uses.Distinct().ToList();
    }

    private static void Walk(JsonElement node, Collected collected, ref double writeRows)
    {
        var (relations, functions, _, _, aliases, returned, writers, unprinted, unfiltered) = collected;
        var nodeType = Text(node, "Node Type") ?? "";
        if (PrunedAsItStarted(node))
        {
            // Planned again without pruning when the first plan left partitions out; one that still does would hide what they hold.
            throw new Execution.DatabaseException(Execution.DatabaseFailure.Rejected, "PostgreSQL left partitions out of the statement's plan (Subplans Removed), so not everything it may read can be checked; it is refused");
        }

        if (node.TryGetProperty("Relations", out _) && Text(node, "Relation Name") is null)
        {
            // A foreign (or custom) scan that joins or aggregates on the remote server names its tables only in words
            // ("Aggregate on (public.f_secret)"): what it reads cannot be checked against the grants.
            throw new Execution.DatabaseException(
                Execution.DatabaseFailure.Rejected,
                $"PostgreSQL plans a {nodeType} that joins or aggregates on a remote server ({Text(node, "Relations")}), whose tables the plan does not name, so what it reads cannot be checked; it is refused. Select the foreign table's columns without joining or aggregating them, or ask the DBA to turn off the server's join and aggregate pushdown");
        }

        if (nodeType is "Foreign Scan" or "Custom Scan" && Text(node, "Relation Name") is null && !node.TryGetProperty("Plans", out _))
        {
            // A scan of another server's (an FDW's join pushed down, an extension's distributed scan) that names no table and
            // has no plans under it: what it reads cannot be checked against the grants, and would count as nothing read.
            throw new Execution.DatabaseException(
                Execution.DatabaseFailure.Rejected,
                $"PostgreSQL plans a {nodeType} that names no table, so what it reads cannot be checked; it is refused. Select a foreign table's columns without joining or aggregating them, or ask the DBA about the extension that plans it");
        }

        if (nodeType == "ModifyTable" && node.TryGetProperty("Plans", out var sources))
        {
            // A ModifyTable returns no rows unless RETURNING; what it touches is what its source produces.
            writeRows += sources.EnumerateArray().Where(p => Text(p, "Parent Relationship") == "Outer").Sum(Rows);
        }

        if (Text(node, "Relation Name") is { } name)
        {
            var relation = new RelationName(Text(node, "Schema") ?? "public", name);
            var operation = nodeType == "ModifyTable" ? Text(node, "Operation")?.ToLowerInvariant() : null;
            var writer = operation is not null;
            relations.Add(writer
                ? new RelationAccess(relation, AccessLevel.Write, operation!)
                : new RelationAccess(relation, AccessLevel.Read, "read"));
            if (writer)
            {
                writers.Add(operation!);
            }

            var upsert = writer && Text(node, "Conflict Resolution") == "UPDATE";
            if (upsert)
            {
                // INSERT ... ON CONFLICT DO UPDATE updates the rows it collides with.
                relations.Add(new RelationAccess(relation, AccessLevel.Write, "update"));
            }

            if (upsert || operation == "merge")
            {
                // Their SET lists and WHEN conditions read the target row, fetched again by ctid, and the plan prints none of it.
                unprinted.Add(relation);
            }

            if (operation is "update" or "delete" && node.TryGetProperty("Plans", out var source)
                && source.EnumerateArray().Where(p => Text(p, "Parent Relationship") == "Outer").ToList() is [var outer] && Unfiltered(outer))
            {
                // WHERE true, WHERE 1 = 1, WHERE $1 bound to true: a condition the planner drops as always true.
                unfiltered.Add(relation);
            }

            aliases.Add((Text(node, "Alias") ?? name, relation));
            if (writer && node.TryGetProperty("Target Tables", out var targets) && targets.ValueKind == JsonValueKind.Array)
            {
                // Writing a table writes its inheritance children (and partitions) too; the plan names them only here, and
                // scans them as reads. A child needs a write grant of its own (a partition is covered by its table's).
                var children = targets.EnumerateArray()
                    .Where(t => t.ValueKind == JsonValueKind.Object && Text(t, "Relation Name") is not null)
                    .Select(t => new RelationName(Text(t, "Schema") ?? "public", Text(t, "Relation Name")!))
                    .Where(t => t != relation)
                    .ToList();
                relations.AddRange(children.Select(c => new RelationAccess(c, AccessLevel.Write, operation!)));
                if (upsert || operation == "merge")
                {
                    unprinted.AddRange(children);
                }
            }

            if (nodeType == "ModifyTable" && node.TryGetProperty("Output", out var output) && output.ValueKind == JsonValueKind.Array)
            {
                returned.AddRange(output.EnumerateArray()
                    .Where(o => o.ValueKind == JsonValueKind.String)
                    .SelectMany(o => ColumnReader.Read(o.GetString()!))
                    .Select(r => (relation, r.Alias, r.Column)));
            }
        }

        foreach (var property in node.EnumerateObject())
        {
            if (property.Name == "Plans")
            {
                foreach (var child in property.Value.EnumerateArray())
                {
                    Walk(child, collected, ref writeRows);
                }
            }
            else if (!NameProperties.Contains(property.Name))
            {
                CollectExpressions(property.Value, collected);
            }
        }
    }

    // Whether a write's source is every row of its table: plain scans with no condition, under appends (partitions) and
    // results that filter nothing. A join, a subquery, a limit or any filter may name fewer, and is not judged.
    private static bool Unfiltered(JsonElement node)
    {
        if (node.TryGetProperty("Filter", out _) || node.TryGetProperty("One-Time Filter", out _) || node.TryGetProperty("Join Filter", out _))
        {
            return false;
        }

        return Text(node, "Node Type") switch
        {
            "Seq Scan" => true,
            "Append" or "Merge Append" or "Result" => node.TryGetProperty("Plans", out var children)
                && children.EnumerateArray().ToList() is { Count: > 0 } list && list.All(Unfiltered),
            _ => false,
        };
    }

    private const string Extract = "EXTRACT(";

    /// <summary>
    /// The first EXTRACT unit in a plan's expression that is not a plain word, quoted for a message; null when there is none.
    /// PostgreSQL prints EXTRACT's unit as written, without quotes, so one holding a quote (<c>EXTRACT('''' FROM d)</c>, which
    /// a CASE can keep from ever running) makes the rest of the text read as a string literal up to the next: a column there
    /// was hidden from the column readers, and overlay masking let it through raw. An EXTRACT in a string literal counts
    /// too: a refusal, never a miss.
    /// </summary>
    internal static string? UnreadableExtractUnit(string expression)
    {
        for (var at = expression.IndexOf(Extract, StringComparison.Ordinal); at >= 0; at = expression.IndexOf(Extract, at + 1, StringComparison.Ordinal))
        {
            var unit = at + Extract.Length;
            var end = unit;
            while (end < expression.Length && (char.IsAsciiLetterOrDigit(expression[end]) || expression[end] == '_'))
            {
                end++;
            }

            if (end == unit || !expression.AsSpan(end).StartsWith(" FROM ", StringComparison.Ordinal))
            {
                var shown = expression[unit..Math.Min(expression.Length, unit + 40)];
                var from = shown.IndexOf(" FROM ", StringComparison.Ordinal);
                return "'" + (from >= 0 ? shown[..from] : shown) + "'";
            }
        }

        return null;
    }

    private static void CollectExpressions(JsonElement value, Collected collected)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                var expression = value.GetString()!;
                if (UnreadableExtractUnit(expression) is { } unit)
                {
                    throw new Execution.DatabaseException(
                        Execution.DatabaseFailure.Rejected,
                        $"the statement has an EXTRACT whose unit ({unit}) is not a plain word; PostgreSQL prints such a unit in the plan as written, unquoted, which can hide the columns after it from the gateway, so it is refused. Write the unit as a word: EXTRACT(year FROM …)");
                }

                collected.Functions.AddRange(FunctionCallReader.Read(expression));
                collected.References.AddRange(ColumnReader.Read(expression));
                collected.Bare.AddRange(ColumnReader.ReadBare(expression));
                break;
            case JsonValueKind.Array:
                foreach (var item in value.EnumerateArray())
                {
                    CollectExpressions(item, collected);
                }

                break;
            case JsonValueKind.Object:
                foreach (var property in value.EnumerateObject())
                {
                    CollectExpressions(property.Value, collected);
                }

                break;
        }
    }

    private static double Rows(JsonElement node) =>
        node.TryGetProperty("Plan Rows", out var rows) && rows.TryGetDouble(out var value) ? value : 0;

    private static string? Text(JsonElement node, string property) =>
        node.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
