using System.Collections.Concurrent;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Policy;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>One pooled data source per configured connection, holding the gateway's credential. Agents never see it.</summary>
public sealed class PostgresTargets : IAsyncDisposable
{
    private readonly IReadOnlyDictionary<string, ConnectionConfig> _connections;
    private readonly ConcurrentDictionary<string, NpgsqlDataSource> _sources = new(StringComparer.Ordinal);

    static PostgresTargets() => NpgsqlSettings.DisableSqlRewriting();

    public PostgresTargets(IReadOnlyDictionary<string, ConnectionConfig> connections) => _connections = connections;

    public NpgsqlDataSource Get(string connection) => _sources.GetOrAdd(connection, Build);

    public ConnectionConfig Config(string connection) =>
        _connections.TryGetValue(connection, out var config) ? config : throw new InvalidOperationException($"Unknown connection '{connection}'.");

    /// <summary>Opens a pooled connection, turning connection failures into <see cref="DatabaseFailure.Unavailable"/>.</summary>
    public async ValueTask<NpgsqlConnection> OpenAsync(string connection, CancellationToken cancellationToken)
    {
        try
        {
            return await Get(connection).OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException or IOException)
        {
            throw PostgresErrors.Map(e, connecting: true);
        }
    }

    private NpgsqlDataSource Build(string name)
    {
        var config = Config(name);
        var builder = new NpgsqlDataSourceBuilder(config.ConnectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= "gatehouse";
        // Lets the executor tell a failed settings row (a missing masking profile) from a failed statement.
        builder.ConnectionStringBuilder.IncludeFailedBatchedCommand = true;
        if (config.Password.EnvironmentVariable is not null || config.Password.FilePath is not null)
        {
            // Read at each new physical connection, so a rotated password file needs no restart.
            builder.UsePasswordProvider(
                _ => config.Password.Read() ?? "",
                (_, _) => ValueTask.FromResult(config.Password.Read() ?? ""));
        }

        return builder.Build();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var source in _sources.Values)
        {
            await source.DisposeAsync().ConfigureAwait(false);
        }
    }
}
