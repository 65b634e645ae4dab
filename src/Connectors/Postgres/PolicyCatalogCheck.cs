using Gatehouse.Enforcement.Policy;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// <c>gatehouse policy check --connection NAME</c>: whether what the policy names on one connection exists in the live
/// database: the schemas and tables of every grant (agents' and groups'), the columns of every sensitive tag, and the
/// roles of <c>group_roles</c>. Read from pg_catalog, which every role may read, as the gateway's own login role.
/// </summary>
public static class PolicyCatalogCheck
{
    public static async Task<IReadOnlyList<string>> CheckAsync(GatewayPolicy policy, string connection, PostgresTargets targets, CancellationToken cancellationToken)
    {
        var schemas = new HashSet<string>(StringComparer.Ordinal);
        var relations = new HashSet<(string, string)>();
        var columns = new HashSet<(string, string, string)>();
        var roles = new HashSet<string>(StringComparer.Ordinal);
        await using (var open = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            await using var batch = new NpgsqlBatch(open)
            {
                BatchCommands =
                {
                    new("""
                        SELECT n.nspname, c.relname, a.attname
                        FROM pg_namespace n
                        LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
                        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        """),
                    new("SELECT rolname FROM pg_roles"),
                },
            };
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                schemas.Add(reader.GetString(0));
                if (!reader.IsDBNull(1))
                {
                    relations.Add((reader.GetString(0), reader.GetString(1)));
                }

                if (!reader.IsDBNull(2))
                {
                    columns.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
                }
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                roles.Add(reader.GetString(0));
            }
        }

        var problems = new List<string>();
        var principals = policy.Agents.Values.Select(p => ($"agent '{p.Name}'", p)).Concat(policy.Groups.Values.Select(p => ($"group '{p.Name}'", p)));
        foreach (var (who, principal) in principals)
        {
            foreach (var grant in principal.Grants.Where(g => g.Connection == connection))
            {
                problems.AddRange(grant.Schemas.Where(s => !schemas.Contains(s)).Select(s => $"{who}: a grant names schema '{s}', which does not exist"));
                problems.AddRange(grant.Tables.Where(t => !relations.Contains((t.Schema, t.Name))).Select(t => $"{who}: a grant names table {t}, which does not exist"));
            }
        }

        var config = policy.Connections[connection];
        foreach (var (column, sensitiveClass) in config.Tags)
        {
            if (!relations.Contains((column.Relation.Schema, column.Relation.Name)))
            {
                problems.Add($"tag {column.Relation}.{column.Column} ({sensitiveClass}): table {column.Relation} does not exist");
            }
            else if (!columns.Contains((column.Relation.Schema, column.Relation.Name, column.Column)))
            {
                problems.Add($"tag {column.Relation}.{column.Column} ({sensitiveClass}): table {column.Relation} has no column '{column.Column}'");
            }
        }

        problems.AddRange(config.GroupRoles.Where(m => !roles.Contains(m.Role)).Select(m => $"group_roles: group '{m.Group}' maps to role '{m.Role}', which does not exist"));
        return problems.Distinct(StringComparer.Ordinal).ToList();
    }
}
