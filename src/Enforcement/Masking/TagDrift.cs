using System.Collections.Concurrent;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Masking;

/// <summary>
/// Drift between the policy's tags and the database: a tag that names no existing column protects nothing (a typo, a renamed
/// column), so the connection refuses calls until the policy matches again. Checked once per catalog version and policy
/// version (a reload brings new tags).
/// </summary>
public sealed class TagDrift(ISchemaCatalog catalog, ICatalogVersionSource versions)
{
    private readonly ConcurrentDictionary<string, (string Version, IReadOnlyDictionary<ColumnUse, string> Tags, Decision? Result)> _checked = new(StringComparer.Ordinal);

    public async ValueTask<Decision?> CheckAsync(ConnectionConfig connection, CancellationToken cancellationToken)
    {
        if (connection.Tags.Count == 0)
        {
            return null;
        }

        var version = versions.Current(connection.Name);
        if (version is not null && _checked.TryGetValue(connection.Name, out var known) && known.Version == version && ReferenceEquals(known.Tags, connection.Tags))
        {
            return known.Result;
        }

        var tables = await catalog.DescribeAsync(connection.Name, null, null, cancellationToken).ConfigureAwait(false);
        var missing = MissingTags(connection, tables);
        var derived = UntaggedDerivations(connection, tables);
        Decision? result = null;
        if (missing.Count > 0)
        {
            result = Decision.Deny("masking.tags_out_of_sync", $"connection '{connection.Name}' is not ready: the policy tags {string.Join(", ", missing)}, which the database does not have, so the real column may be unprotected. Fix the tags (gatehouse classify proposes them) and calls resume");
        }
        else if (derived.Count > 0)
        {
            var more = derived.Count > 1 ? $" (and {derived.Count - 1} more such column(s): gatehouse policy check --connection lists them)" : "";
            result = Decision.Deny("masking.tags_out_of_sync", $"connection '{connection.Name}' is not ready: {Describe(derived[0])}{more}. Tag it too and calls resume");
        }
        if (version is not null)
        {
            _checked[connection.Name] = (version, connection.Tags, result);
        }

        return result;
    }

    /// <summary>
    /// The generated columns the policy leaves untagged that compute their value from a tagged column of their table (a
    /// last four digits from a tagged number, say): read by name, they would show what the tag hides. A child's columns
    /// carry its parents' tags, as masking reads them; a child may compute an inherited generated column its own way.
    /// </summary>
    public static IReadOnlyList<Derivation> UntaggedDerivations(ConnectionConfig connection, IReadOnlyList<TableDescription> tables)
    {
        var derived = new List<Derivation>();
        foreach (var table in tables)
        {
            string? ClassOf(string column) => connection.NearestTag(table.Ancestors.Prepend(table.Name), column);
            foreach (var column in table.Columns.Where(c => c.ComputedFrom.Count > 0 && ClassOf(c.Name) is null))
            {
                if (column.ComputedFrom.FirstOrDefault(source => ClassOf(source) is not null) is { } source)
                {
                    derived.Add(new Derivation(new ColumnUse(table.Name, column.Name), new ColumnUse(table.Name, source), ClassOf(source)!));
                }
            }
        }

        return derived;
    }

    /// <summary>One sentence on an untagged column computed from a tagged one.</summary>
    public static string Describe(Derivation derived) =>
        $"generated column {derived.Column} is computed from {derived.Source}, tagged {derived.SourceClass}, but has no tag of its own, so it would show what that tag hides";

    /// <summary>The connection's tags that name no column of <paramref name="tables"/> (the whole catalog).</summary>
    public static IReadOnlyList<ColumnUse> MissingTags(ConnectionConfig connection, IReadOnlyList<TableDescription> tables)
    {
        var columns = tables.SelectMany(t => t.Columns.Select(c => new ColumnUse(t.Name, c.Name))).ToHashSet();
        return connection.Tags.Keys.Where(tag => !columns.Contains(tag)).ToList();
    }
}

/// <summary>A generated column <paramref name="Column"/> whose expression reads the tagged column <paramref name="Source"/>.</summary>
public sealed record Derivation(ColumnUse Column, ColumnUse Source, string SourceClass);
