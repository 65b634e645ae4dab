using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Masking;

/// <summary>
/// Explains strict-mode masking: which result columns PostgreSQL's profile views masked, and as which class, read from the
/// top plan node's output expressions (EXPLAIN VERBOSE). The views keep each column's name, so a tagged column shows up by
/// name whether the statement reads it directly, through an alias or inside an expression. The non-null values of such a
/// column are counted as masked under its class, so the result and the audit record say what the agent received.
/// </summary>
public static class StrictLineage
{
    public static QueryResult Annotate(QueryResult result, PlanFacts plan, ConnectionConfig connection, IReadOnlySet<string> masked)
    {
        if (masked.Count == 0 || plan.Outputs.Count != result.Columns.Count)
        {
            return result;
        }

        var read = plan.Relations.SelectMany(r => plan.SelfAndAncestors(r.Relation)).ToHashSet();
        var tagged = connection.Tags
            .Where(t => masked.Contains(t.Value) && read.Contains(t.Key.Relation))
            .ToLookup(t => t.Key.Column, t => t.Value, StringComparer.Ordinal);
        if (tagged.Count == 0)
        {
            return result;
        }

        var columns = result.MaskedColumns.ToDictionary(c => c.Key, c => c.Value.ToHashSet(StringComparer.Ordinal), StringComparer.Ordinal);
        var counts = new Dictionary<string, int>(result.Masked, StringComparer.Ordinal);
        for (var i = 0; i < plan.Outputs.Count; i++)
        {
            var expression = plan.Outputs[i];
            var names = ColumnReader.Read(expression).Select(c => c.Column).Concat(ColumnReader.ReadBare(expression));
            var classes = names.SelectMany(n => tagged[n]).ToList();
            if (classes.Count > 0)
            {
                var name = result.Columns[i].Name;
                if (!columns.TryGetValue(name, out var set))
                {
                    columns[name] = set = new HashSet<string>(StringComparer.Ordinal);
                }

                set.UnionWith(classes);
                var values = result.Rows.Count(row => row[i] is not null);
                counts[classes[0]] = counts.GetValueOrDefault(classes[0]) + values;
            }
        }

        return result with
        {
            Masked = counts,
            MaskedColumns = columns.ToDictionary(c => c.Key, c => (IReadOnlyList<string>)c.Value.Order(StringComparer.Ordinal).ToList(), StringComparer.Ordinal),
        };
    }
}
