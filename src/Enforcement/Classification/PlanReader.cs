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

    public static PlanFacts Read(string explainJson)
    {
        using var document = JsonDocument.Parse(explainJson);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() == 0 || !root[0].TryGetProperty("Plan", out var plan))
        {
            throw new FormatException("EXPLAIN output has no plan.");
        }

        var relations = new List<RelationAccess>();
        var functions = new List<FunctionCall>();
        Walk(plan, relations, functions);
        var rows = plan.TryGetProperty("Plan Rows", out var r) && r.TryGetDouble(out var d) ? d : 0;
        return new PlanFacts(relations.Distinct().ToList(), functions.Distinct().ToList(), rows);
    }

    private static void Walk(JsonElement node, List<RelationAccess> relations, List<FunctionCall> functions)
    {
        var nodeType = Text(node, "Node Type") ?? "";
        if (Text(node, "Relation Name") is { } name)
        {
            var relation = new RelationName(Text(node, "Schema") ?? "public", name);
            var operation = Text(node, "Operation");
            relations.Add(nodeType == "ModifyTable" && operation is not null
                ? new RelationAccess(relation, AccessLevel.Write, operation.ToLowerInvariant())
                : new RelationAccess(relation, AccessLevel.Read, "read"));
        }

        foreach (var property in node.EnumerateObject())
        {
            if (property.Name == "Plans")
            {
                foreach (var child in property.Value.EnumerateArray())
                {
                    Walk(child, relations, functions);
                }
            }
            else if (!NameProperties.Contains(property.Name))
            {
                CollectCalls(property.Value, functions);
            }
        }
    }

    private static void CollectCalls(JsonElement value, List<FunctionCall> functions)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                functions.AddRange(FunctionCallReader.Read(value.GetString()!));
                break;
            case JsonValueKind.Array:
                foreach (var item in value.EnumerateArray())
                {
                    CollectCalls(item, functions);
                }

                break;
            case JsonValueKind.Object:
                foreach (var property in value.EnumerateObject())
                {
                    CollectCalls(property.Value, functions);
                }

                break;
        }
    }

    private static string? Text(JsonElement node, string property) =>
        node.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
