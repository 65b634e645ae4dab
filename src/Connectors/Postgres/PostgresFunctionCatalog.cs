using System.Collections.Concurrent;
using Gatehouse.Enforcement.Classification;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Reads pg_proc (and the operators that are not built-ins: defined outside pg_catalog or over a function that is not) per connection and keeps it while the catalog version stands; a refresh for an unknown name is rate-limited
/// so unknown names cannot hammer the catalog.
/// </summary>
public sealed class PostgresFunctionCatalog(PostgresTargets targets, ICatalogVersionSource versions, TimeProvider time) : IFunctionCatalogSource
{
    private static readonly TimeSpan MinRefreshInterval = TimeSpan.FromSeconds(5);

    private const string Functions =
        "SELECT n.nspname, p.proname, p.provolatile::text, p.prosecdef, l.lanname, p.oid"
        + " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang";

    // Operators that are not built-ins: a parse tree names only the operator a sort or group clause uses, not its function.
    private const string Operators =
        "SELECT o.oid, opn.nspname, o.oprname, n.nspname, p.proname, p.provolatile::text, p.prosecdef, l.lanname, p.oid"
        + " FROM pg_operator o JOIN pg_namespace opn ON opn.oid = o.oprnamespace JOIN pg_proc p ON p.oid = o.oprcode"
        + " JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang"
        + " WHERE opn.nspname <> 'pg_catalog' OR n.nspname <> 'pg_catalog' OR p.prosecdef OR o.oid >= 16384";

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
        await using var batch = new NpgsqlBatch(pooled.Connection) { BatchCommands = { new NpgsqlBatchCommand(Functions), new NpgsqlBatchCommand(Operators) } };
        var functions = new List<FunctionInfo>();
        var operators = new List<OperatorInfo>();
        try
        {
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                functions.Add(Function(reader, 0));
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                operators.Add(new OperatorInfo(reader.GetFieldValue<uint>(0), reader.GetString(1), reader.GetString(2), Function(reader, 3)));
            }

            pooled.MarkCatalogReadsDone();
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
        {
            throw PostgresErrors.Map(e);
        }

        return new FunctionCatalog(functions, operators);
    }

    // Schema, name, provolatile, prosecdef, language and oid, from column <paramref name="first"/> on.
    private static FunctionInfo Function(NpgsqlDataReader reader, int first)
    {
        var volatility = reader.GetString(first + 2) switch
        {
            "i" => Volatility.Immutable,
            "s" => Volatility.Stable,
            _ => Volatility.Volatile,
        };
        return new FunctionInfo(reader.GetString(first), reader.GetString(first + 1), volatility, reader.GetBoolean(first + 3), reader.GetString(first + 4))
        {
            Oid = reader.GetFieldValue<uint>(first + 5),
        };
    }
}
