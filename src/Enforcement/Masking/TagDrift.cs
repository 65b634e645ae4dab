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

        var missing = MissingTags(connection, await catalog.DescribeAsync(connection.Name, null, null, cancellationToken).ConfigureAwait(false));
        var result = missing.Count == 0
            ? null
            : Decision.Deny("masking.tags_out_of_sync", $"connection '{connection.Name}' is not ready: the policy tags {string.Join(", ", missing)}, which the database does not have, so the real column may be unprotected. Fix the tags (gatehouse classify proposes them) and calls resume");
        if (version is not null)
        {
            _checked[connection.Name] = (version, connection.Tags, result);
        }

        return result;
    }

    /// <summary>The connection's tags that name no column of <paramref name="tables"/> (the whole catalog).</summary>
    public static IReadOnlyList<ColumnUse> MissingTags(ConnectionConfig connection, IReadOnlyList<TableDescription> tables)
    {
        var columns = tables.SelectMany(t => t.Columns.Select(c => new ColumnUse(t.Name, c.Name))).ToHashSet();
        return connection.Tags.Keys.Where(tag => !columns.Contains(tag)).ToList();
    }
}
