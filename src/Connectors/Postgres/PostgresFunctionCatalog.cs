using System.Collections.Concurrent;
using Gatehouse.Enforcement.Classification;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Reads pg_proc per connection and keeps it while the catalog version stands; a refresh for an unknown name is rate-limited
/// so unknown names cannot hammer the catalog.
/// </summary>
public sealed class PostgresFunctionCatalog(PostgresTargets targets, ICatalogVersionSource versions, TimeProvider time) : IFunctionCatalogSource
{
    private static readonly TimeSpan MinRefreshInterval = TimeSpan.FromSeconds(5);

    private const string Sql =
        "SELECT n.nspname, p.proname, p.provolatile::text, p.prosecdef, l.lanname"
        + " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang";

    private readonly ConcurrentDictionary<string, (FunctionCatalog Catalog, DateTimeOffset ReadAt, string? Version)> _cache = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _loading = new(1, 1);

    public async ValueTask<FunctionCatalog> GetAsync(string connection, bool refresh, CancellationToken cancellationToken)
    {
        var version = versions.Current(connection);
        if (_cache.TryGetValue(connection, out var cached) && Fresh(cached, version) && (!refresh || time.GetUtcNow() - cached.ReadAt < MinRefreshInterval))
        {
            return cached.Catalog;
        }

        await _loading.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_cache.TryGetValue(connection, out cached) && Fresh(cached, version) && cached.ReadAt > time.GetUtcNow() - MinRefreshInterval)
            {
                return cached.Catalog;
            }

            var catalog = await LoadAsync(connection, cancellationToken).ConfigureAwait(false);
            _cache[connection] = (catalog, time.GetUtcNow(), version);
            return catalog;
        }
        finally
        {
            _loading.Release();
        }
    }

    // Kept while the catalog version it was read under is still current; with no confirmed version, for one second at most.
    private bool Fresh((FunctionCatalog Catalog, DateTimeOffset ReadAt, string? Version) cached, string? version) =>
        version is not null ? cached.Version == version : time.GetUtcNow() - cached.ReadAt < TimeSpan.FromSeconds(1);

    private async Task<FunctionCatalog> LoadAsync(string connection, CancellationToken cancellationToken)
    {
        await using var pooled = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
        var conn = pooled.Connection;
        await using var command = new NpgsqlCommand(Sql, conn);
        var functions = new List<FunctionInfo>();
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var volatility = reader.GetString(2) switch
                {
                    "i" => Volatility.Immutable,
                    "s" => Volatility.Stable,
                    _ => Volatility.Volatile,
                };
                functions.Add(new FunctionInfo(reader.GetString(0), reader.GetString(1), volatility, reader.GetBoolean(3), reader.GetString(4)));
            }

            pooled.MarkCatalogReadsDone();
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
        {
            throw PostgresErrors.Map(e);
        }

        return new FunctionCatalog(functions);
    }
}
