using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Npgsql;
using NpgsqlTypes;

namespace Gatehouse.Connectors.Postgres;

/// <summary>Reads tables, columns, keys and comments from pg_catalog in one round trip. Filtering by grants happens in Enforcement.</summary>
public sealed class PostgresCatalog(PostgresTargets targets) : ISchemaCatalog
{
    private const string Filter =
        "c.relkind IN ('r','v','m','p','f') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
        + " AND ($1::text IS NULL OR n.nspname = $1) AND ($2::text IS NULL OR c.relname = $2)";

    private const string ColumnsSql =
        "SELECT n.nspname, c.relname, c.relkind::text, obj_description(c.oid, 'pg_class'), a.attname, format_type(a.atttypid, a.atttypmod),"
        + " NOT a.attnotnull, col_description(c.oid, a.attnum),"
        // A generated column's expression depends on the columns it reads (and its default on its own column).
        + " ARRAY(SELECT r.attname::text FROM pg_attrdef ad"
        + "   JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid"
        + "   JOIN pg_attribute r ON r.attrelid = c.oid AND r.attnum = d.refobjsubid AND r.attnum <> a.attnum"
        + "   WHERE a.attgenerated <> '' AND ad.adrelid = c.oid AND ad.adnum = a.attnum ORDER BY r.attnum)"
        + " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        + " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        + " WHERE " + Filter + " ORDER BY n.nspname, c.relname, a.attnum";

    private const string KeysSql =
        "SELECT n.nspname, c.relname, con.contype::text,"
        + " ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord),"
        + " fn.nspname, fc.relname,"
        + " ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord)"
        + " FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        + " LEFT JOIN pg_class fc ON fc.oid = con.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace"
        + " WHERE con.contype IN ('p','f') AND " + Filter + " ORDER BY con.conname";

    // The tables each inheritance child (or partition) descends from, nearest first: a child has its parent's columns.
    // The walk starts from the tables described only, not from every link in the database (partitioned indexes have them too).
    private const string AncestorsSql =
        "WITH RECURSIVE up(child, parent, depth) AS (SELECT i.inhrelid, i.inhparent, 1 FROM pg_inherits i"
        + " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " + Filter
        + " UNION ALL SELECT up.child, i.inhparent, up.depth + 1 FROM up JOIN pg_inherits i ON i.inhrelid = up.parent WHERE up.depth < 100)"
        + " SELECT n.nspname, c.relname, pn.nspname, p.relname FROM up JOIN pg_class c ON c.oid = up.child JOIN pg_namespace n ON n.oid = c.relnamespace"
        + " JOIN pg_class p ON p.oid = up.parent JOIN pg_namespace pn ON pn.oid = p.relnamespace"
        + " ORDER BY 1, 2, up.depth, 3, 4";

    public async ValueTask<IReadOnlyList<TableDescription>> DescribeAsync(string connection, string? schema, string? table, CancellationToken cancellationToken)
    {
        await using var pooled = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
        var conn = pooled.Connection;
        await using var batch = conn.CreateBatch();
        batch.BatchCommands.Add(WithFilter(ColumnsSql, schema, table));
        batch.BatchCommands.Add(WithFilter(KeysSql, schema, table));
        batch.BatchCommands.Add(WithFilter(AncestorsSql, schema, table));
        var tables = new Dictionary<RelationName, Builder>();
        try
        {
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var name = new RelationName(reader.GetString(0), reader.GetString(1));
                if (!tables.TryGetValue(name, out var builder))
                {
                    tables[name] = builder = new Builder(name, KindName(reader.GetString(2)), reader.IsDBNull(3) ? null : reader.GetString(3));
                }

                builder.Columns.Add(new ColumnDescription(reader.GetString(4), reader.GetString(5), reader.GetBoolean(6), reader.IsDBNull(7) ? null : reader.GetString(7))
                {
                    ComputedFrom = reader.GetFieldValue<string[]>(8),
                });
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!tables.TryGetValue(new RelationName(reader.GetString(0), reader.GetString(1)), out var builder))
                {
                    continue;
                }

                var columns = reader.GetFieldValue<string[]>(3);
                if (reader.GetString(2) == "p")
                {
                    builder.PrimaryKey.AddRange(columns);
                }
                else
                {
                    builder.ForeignKeys.Add(new ForeignKeyDescription(columns, new RelationName(reader.GetString(4), reader.GetString(5)), reader.GetFieldValue<string[]>(6)));
                }
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (tables.TryGetValue(new RelationName(reader.GetString(0), reader.GetString(1)), out var builder))
                {
                    builder.Ancestors.Add(new RelationName(reader.GetString(2), reader.GetString(3)));
                }
            }

            pooled.MarkCatalogReadsDone();
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
        {
            throw PostgresErrors.Map(e);
        }

        return tables.Values.Select(b => new TableDescription(b.Name, b.Kind, b.Comment, b.Columns, b.PrimaryKey, b.ForeignKeys) { Ancestors = b.Ancestors.Distinct().ToList() }).ToList();
    }

    /// <summary>Every schema and every role the database has, for checking what a policy names (<c>policy check</c>).</summary>
    public async Task<(IReadOnlySet<string> Schemas, IReadOnlySet<string> Roles)> SchemasAndRolesAsync(string connection, CancellationToken cancellationToken)
    {
        await using var pooled = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
        var conn = pooled.Connection;
        await using var batch = new NpgsqlBatch(conn) { BatchCommands = { new("SELECT nspname FROM pg_namespace"), new("SELECT rolname FROM pg_roles") } };
        var schemas = new HashSet<string>(StringComparer.Ordinal);
        var roles = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            foreach (var names in new[] { schemas, roles })
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    names.Add(reader.GetString(0));
                }

                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            }

            pooled.MarkCatalogReadsDone();
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
        {
            throw PostgresErrors.Map(e);
        }

        return (schemas, roles);
    }

    private static NpgsqlBatchCommand WithFilter(string sql, string? schema, string? table)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)schema ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)table ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        return command;
    }

    private static string KindName(string relkind) => relkind switch
    {
        "v" => "view",
        "m" => "materialized view",
        "f" => "foreign table",
        "p" => "partitioned table",
        _ => "table",
    };

    private sealed record Builder(RelationName Name, string Kind, string? Comment)
    {
        public List<ColumnDescription> Columns { get; } = [];

        public List<string> PrimaryKey { get; } = [];

        public List<ForeignKeyDescription> ForeignKeys { get; } = [];

        public List<RelationName> Ancestors { get; } = [];
    }
}
