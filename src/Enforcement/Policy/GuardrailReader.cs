using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Guardrails;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Reads the policy's <c>guardrails</c> list: id, optional connection, match, outcome, message.</summary>
internal static class GuardrailReader
{
    private static readonly string[] Operations = ["read", "insert", "update", "delete", "merge"];

    public static List<GuardrailRule> Read(YamlNodeReader reader, YamlNode node, IReadOnlyDictionary<string, ConnectionConfig> connections)
    {
        var rules = new List<GuardrailRule>();
        foreach (var item in reader.Sequence(node, "guardrails"))
        {
            var e = reader.Mapping(item, "a guardrail", "id", "connection", "match", "outcome", "message");
            var id = reader.String(e, "id", "guardrail id", requiredAt: item);
            var what = $"guardrail '{id}'";
            var connection = reader.String(e, "connection", $"{what}: connection");
            if (connection is not null && !connections.ContainsKey(connection))
            {
                reader.Error(e["connection"], $"{what}: connection '{connection}' is not defined under 'connections'.");
            }

            var outcomeText = reader.String(e, "outcome", $"{what}: outcome", requiredAt: item);
            GuardrailOutcome? outcome = outcomeText switch
            {
                "deny" => GuardrailOutcome.Deny,
                "require_approval" => GuardrailOutcome.RequireApproval,
                _ => null,
            };
            if (outcomeText is not null && outcome is null)
            {
                reader.Error(e["outcome"], $"{what}: outcome '{outcomeText}' is not known; use deny or require_approval.");
            }

            var match = e.TryGetValue("match", out var m) ? ReadMatch(reader, m, what) : null;
            if (match is null || match.IsEmpty)
            {
                reader.Error(item, $"{what}: a guardrail needs a match with at least one condition.");
            }

            if (id is not null && outcome is not null && match is { IsEmpty: false })
            {
                rules.Add(new GuardrailRule(id, connection, match, outcome.Value, reader.String(e, "message", $"{what}: message")));
            }
        }

        foreach (var duplicate in rules.GroupBy(r => r.Id, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            reader.Error(node, $"guardrail id '{duplicate.Key}' is used more than once.");
        }

        return rules;
    }

    private static GuardrailMatch ReadMatch(YamlNodeReader reader, YamlNode node, string what)
    {
        var e = reader.Mapping(node, $"{what}: match", "kinds", "tables", "operations", "without_where", "min_rows", "functions", "agents", "groups", "delegated", "delegated_by", "delegator_groups");
        var kinds = new List<StatementKind>();
        foreach (var text in e.TryGetValue("kinds", out var k) ? reader.Strings(k, $"{what}: kinds") : [])
        {
            if (Enum.TryParse<StatementKind>(text, ignoreCase: true, out var kind) && kind.Name() == text)
            {
                kinds.Add(kind);
            }
            else
            {
                reader.Error(k!, $"{what}: kind '{text}' is not known; use select, insert, update, delete or merge.");
            }
        }

        var tables = new List<RelationName>();
        foreach (var text in e.TryGetValue("tables", out var t) ? reader.Strings(t, $"{what}: tables") : [])
        {
            if (RelationName.TryParse(text, out var relation))
            {
                tables.Add(relation);
            }
            else
            {
                reader.Error(t!, $"{what}: '{text}' is not a table name; write schema.table ({RelationName.Spelling}).");
            }
        }

        var operations = e.TryGetValue("operations", out var o) ? reader.Strings(o, $"{what}: operations") : [];
        foreach (var bad in operations.Where(op => !Operations.Contains(op, StringComparer.Ordinal)))
        {
            reader.Error(o!, $"{what}: operation '{bad}' is not known; use {string.Join(", ", Operations)}.");
        }

        return new GuardrailMatch
        {
            Kinds = kinds,
            Tables = tables,
            Operations = operations,
            WithoutWhere = e.TryGetValue("without_where", out var w) ? reader.Bool(w, $"{what}: without_where") : null,
            MinRows = e.TryGetValue("min_rows", out var r) ? reader.Int(r, $"{what}: min_rows", 0, int.MaxValue) : null,
            Functions = e.TryGetValue("functions", out var f) ? reader.Strings(f, $"{what}: functions") : [],
            Agents = e.TryGetValue("agents", out var a) ? reader.Strings(a, $"{what}: agents") : [],
            Groups = e.TryGetValue("groups", out var g) ? reader.Strings(g, $"{what}: groups") : [],
            Delegated = e.TryGetValue("delegated", out var d) ? reader.Bool(d, $"{what}: delegated") : null,
            DelegatedBy = e.TryGetValue("delegated_by", out var db) ? reader.Strings(db, $"{what}: delegated_by") : [],
            DelegatorGroups = e.TryGetValue("delegator_groups", out var dg) ? reader.Strings(dg, $"{what}: delegator_groups") : [],
        };
    }
}
