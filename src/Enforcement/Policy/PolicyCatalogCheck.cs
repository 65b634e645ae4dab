using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Masking;

namespace Gatehouse.Enforcement.Policy;

/// <summary>
/// <c>gatehouse policy check --connection NAME</c>: what the policy names on one connection that the live database lacks:
/// the schemas and tables of every grant (agents' and groups'), the columns of every sensitive tag (as
/// <see cref="TagDrift"/> finds them), and the roles of <c>group_roles</c>.
/// </summary>
public static class PolicyCatalogCheck
{
    /// <param name="tables">The connection's catalog, as <see cref="ISchemaCatalog"/> describes it.</param>
    public static IReadOnlyList<string> Problems(GatewayPolicy policy, string connection, IReadOnlyList<TableDescription> tables, IReadOnlySet<string> schemas, IReadOnlySet<string> roles)
    {
        var relations = tables.Select(t => t.Name).ToHashSet();
        var problems = new List<string>();
        var principals = policy.Agents.Values.Select(p => ($"agent '{p.Name}'", p)).Concat(policy.Groups.Values.Select(p => ($"group '{p.Name}'", p)));
        foreach (var (who, principal) in principals)
        {
            foreach (var grant in principal.Grants.Where(g => g.Connection == connection))
            {
                problems.AddRange(grant.Schemas.Where(s => !schemas.Contains(s)).Select(s => $"{who}: a grant names schema '{s}', which does not exist"));
                problems.AddRange(grant.Tables.Where(t => !relations.Contains(t)).Select(t => $"{who}: a grant names table {t}, which does not exist"));
            }
        }

        var config = policy.Connections[connection];
        problems.AddRange(TagDrift.MissingTags(config, tables).Select(tag => relations.Contains(tag.Relation)
            ? $"tag {tag.Relation}.{tag.Column} ({config.Tags[tag]}): table {tag.Relation} has no column '{tag.Column}'"
            : $"tag {tag.Relation}.{tag.Column} ({config.Tags[tag]}): table {tag.Relation} does not exist"));
        problems.AddRange(config.GroupRoles.Where(m => !roles.Contains(m.Role)).Select(m => $"group_roles: group '{m.Group}' maps to role '{m.Role}', which does not exist"));
        return problems.Distinct(StringComparer.Ordinal).ToList();
    }
}
