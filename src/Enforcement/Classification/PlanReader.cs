using System.Text.Json;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Classification;

/// <summary>Walks the whole tree of an <c>EXPLAIN (VERBOSE, FORMAT JSON)</c> document, subplans and CTEs included.</summary>
public static class PlanReader
{
    public static PlanFacts Read(string explainJson)
    {
        using var document = JsonDocument.Parse(explainJson);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() == 0 || !root[0].TryGetProperty("Plan", out var plan))
        {
            throw new FormatException("EXPLAIN output has no plan.");
        }

        var relations = new List<RelationAccess>();
        var functions = new List<string>();
        Walk(plan, relations, functions);
        var rows = plan.TryGetProperty("Plan Rows", out var r) && r.TryGetDouble(out var d) ? d : 0;
        return new PlanFacts(relations.Distinct().ToList(), functions.Distinct(StringComparer.Ordinal).ToList(), rows);
    }

    private static void Walk(JsonElement node, List<RelationAccess> relations, List<string> functions)
    {
        var nodeType = Text(node, "Node Type") ?? "";
        if (Text(node, "Relation Name") is { } name)
        {
            var schema = Text(node, "Schema") ?? "public";
            var operation = Text(node, "Operation");
            var relation = new RelationName(schema, name);
            relations.Add(nodeType == "ModifyTable" && operation is not null
                ? new RelationAccess(relation, AccessLevel.Write, operation.ToLowerInvariant())
                : new RelationAccess(relation, AccessLevel.Read, "read"));
        }

        if (Text(node, "Function Name") is { } function)
        {
            functions.Add(Text(node, "Schema") is { } s ? $"{s}.{function}" : function);
        }

        if (node.TryGetProperty("Plans", out var children) && children.ValueKind == JsonValueKind.Array)
        {
            foreach (var child in children.EnumerateArray())
            {
                Walk(child, relations, functions);
            }
        }
    }

    private static string? Text(JsonElement node, string property) =>
        node.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
