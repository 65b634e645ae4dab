using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Guardrails;
using Gatehouse.Enforcement.Masking;

namespace Gatehouse.Enforcement.Policy;

/// <summary>
/// <c>gatehouse policy check --connection NAME</c>: what the policy names on one connection that the live database lacks:
/// the schemas and tables of every grant (agents' and groups'), the tables of every guardrail for it, the
/// columns of every sensitive tag and the generated columns computed from them (as <see cref="TagDrift"/> finds them), and the roles of <c>group_roles</c>. A name that
/// differs from the database's only in case is pointed out, since names compare as PostgreSQL stores them.
/// </summary>
public static class PolicyCatalogCheck
{
    /// <param name="tables">The connection's catalog, as <see cref="ISchemaCatalog"/> describes it.</param>
    public static IReadOnlyList<string> Problems(GatewayPolicy policy, string connection, IReadOnlyList<TableDescription> tables, IReadOnlySet<string> schemas, IReadOnlySet<string> roles)
    {
        var relations = tables.ToDictionary(t => t.Name);
        var problems = new List<string>();
        var principals = policy.Agents.Values.Select(p => ($"agent '{p.Name}'", p)).Concat(policy.Groups.Values.Select(p => ($"group '{p.Name}'", p)));
        foreach (var (who, principal) in principals)
        {
            foreach (var grant in principal.Grants.Where(g => g.Connection == connection))
            {
                problems.AddRange(grant.Schemas.Where(s => !schemas.Contains(s)).Select(s => $"{who}: a grant names schema '{s}', which does not exist{CaseHint(s, schemas)}"));
                problems.AddRange(grant.Tables.Where(t => !relations.ContainsKey(t)).Select(t => $"{who}: a grant names table {t}, which does not exist{CaseHint(t, relations.Keys)}"));
            }
        }

        // A guardrail whose table is misspelt matches nothing: the deny or approval it was written for silently never
        // happens. One for any connection is judged here only when there is no other connection its table could be on.
        foreach (var rule in policy.Guardrails.Where(g => g.Connection == connection || (g.Connection is null && policy.Connections.Count == 1)))
        {
            problems.AddRange(rule.Match.Tables.Where(t => !relations.ContainsKey(t))
                .Select(t => $"guardrail '{rule.Id}': names table {t}, which does not exist{CaseHint(t, relations.Keys)}"));

            // A plan reads the tables under a view, never the view; only a write through its INSTEAD OF triggers is planned
            // on the view itself. So a guardrail on a view that may match reads never matches them.
            if (MayMatchReads(rule.Match))
            {
                problems.AddRange(rule.Match.Tables.Where(t => relations.TryGetValue(t, out var d) && d.Kind == "view")
                    .Select(t => $"guardrail '{rule.Id}': names view {t}, which no read's plan names (it reads the tables under the view); name those tables, or limit the guardrail to writes"));
            }
        }

        var config = policy.Connections[connection];
        problems.AddRange(TagDrift.MissingTags(config, tables).Select(tag => relations.ContainsKey(tag.Relation)
            ? $"tag {tag.Relation}.{tag.Column} ({config.Tags[tag]}): table {tag.Relation} has no column '{tag.Column}'{CaseHint(tag.Column, relations[tag.Relation].Columns.Select(c => c.Name))}"
            : $"tag {tag.Relation}.{tag.Column} ({config.Tags[tag]}): table {tag.Relation} does not exist{CaseHint(tag.Relation, relations.Keys)}"));
        problems.AddRange(TagDrift.UntaggedDerivations(config, tables).Select(d => $"{TagDrift.Describe(d)}: tag it too"));
        problems.AddRange(config.GroupRoles.Where(m => !roles.Contains(m.Role)).Select(m => $"group_roles: group '{m.Group}' maps to role '{m.Role}', which does not exist{CaseHint(m.Role, roles)}"));
        return problems.Distinct(StringComparer.Ordinal).ToList();
    }

    private static bool MayMatchReads(GuardrailMatch match) =>
        (match.Operations.Count == 0 || match.Operations.Contains("read", StringComparer.Ordinal))
        && (match.Kinds.Count == 0 || match.Kinds.Contains(StatementKind.Select) || match.Kinds.Contains(StatementKind.Explain));

    private static string CaseHint(RelationName name, IEnumerable<RelationName> existing) =>
        CaseHint(name.ToString(), existing.Select(r => r.ToString()));

    private static string CaseHint(string name, IEnumerable<string> existing) =>
        existing.FirstOrDefault(e => string.Equals(e, name, StringComparison.OrdinalIgnoreCase)) is { } other
            ? $" (names are case-sensitive: the database has {other})"
            : "";
}
