using System.Collections.Concurrent;
using System.Diagnostics;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Policy;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>One pooled data source per configured connection, holding the gateway's credential. Agents never see it.</summary>
public sealed class PostgresTargets : IAsyncDisposable
{
    /// <summary>Logins tried while a rotated password settles: about four seconds in all.</summary>
    private const int LoginAttempts = 6;

    private static readonly TimeSpan LoginRetryDelay = TimeSpan.FromMilliseconds(250);

    /// <summary>At most this many connections per target for statement probes (<see cref="OpenProbeAsync"/>).</summary>
    public const int ProbePoolSize = 4;

    private readonly Func<IReadOnlyDictionary<string, ConnectionConfig>> _connections;
    private readonly ConcurrentDictionary<string, NpgsqlDataSource> _sources = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, HotConnection> _hot = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, NpgsqlDataSource> _probes = new(StringComparer.Ordinal);

    static PostgresTargets() => NpgsqlSettings.ApplySwitches();

    public PostgresTargets(IReadOnlyDictionary<string, ConnectionConfig> connections) => _connections = () => connections;

    /// <summary>Follows policy reloads: a connection's settings (search path, roles) are read from the policy in force.</summary>
    public PostgresTargets(LivePolicy policy) => _connections = () => policy.Current.Connections;

    // Internal: every connection is lent through OpenAsync, which resets it on its return.
    internal NpgsqlDataSource Get(string connection) => _sources.GetOrAdd(connection, Build);

    public ConnectionConfig Config(string connection) =>
        _connections().TryGetValue(connection, out var config) ? config : throw new InvalidOperationException($"Unknown connection '{connection}'.");

    /// <summary>
    /// Opens a pooled connection, turning connection failures into <see cref="DatabaseFailure.Unavailable"/>. While a password
    /// is being rotated, PostgreSQL and the password file can briefly disagree: a refused password is read again and retried
    /// for a few seconds before the call fails. Disposing the connection resets it (<see cref="PooledConnection"/>).
    /// </summary>
    public ValueTask<PooledConnection> OpenAsync(string connection, CancellationToken cancellationToken) =>
        LogInAsync(connection, async () =>
        {
            var source = Get(connection);
            var hot = Hot(connection, source);
            if (hot.Take() is { } kept)
            {
                return new PooledConnection(kept.Connection, source, hot, kept.Generation, kept.Since);
            }

            var generation = hot.Generation;
            var opened = await source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            return new PooledConnection(opened, source, hot, generation, Stopwatch.GetTimestamp());
        }, cancellationToken);

    /// <summary>
    /// Opens a connection of a pool of its own whose notices keep their detail, for the parse trees PostgreSQL prints into
    /// it (<see cref="PostgresAnalyzer"/>). Every other pool leaves Npgsql's redaction on, since an error's detail can hold
    /// a row's values (a duplicate key's, say), and an exception's message carries it into logs. Its work leaves no session
    /// state: it only prepares and deallocates in a transaction it rolls back, which Npgsql also rolls back on return.
    /// </summary>
    public ValueTask<NpgsqlConnection> OpenProbeAsync(string connection, CancellationToken cancellationToken) =>
        LogInAsync(connection, () => _probes.GetOrAdd(connection, name => Build(name, keepNoticeDetail: true)).OpenConnectionAsync(cancellationToken), cancellationToken);

    /// <summary>Closes the probe pool's connections (idle ones now, busy ones when given back): one may hold a statement left prepared.</summary>
    public void ClearProbes(string connection)
    {
        if (_probes.TryGetValue(connection, out var probe))
        {
            probe.Clear();
        }
    }

    private async ValueTask<T> LogInAsync<T>(string connection, Func<ValueTask<T>> open, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await open().ConfigureAwait(false);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidPassword && attempt < LoginAttempts && Rotatable(Config(connection)))
            {
                await Task.Delay(LoginRetryDelay * attempt, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException or IOException)
            {
                throw PostgresErrors.Map(e, connecting: true);
            }
        }
    }

    // One per connection: one made by a call that lost the race to add it is disposed (its sweep stopped).
    private HotConnection Hot(string connection, NpgsqlDataSource source)
    {
        if (_hot.TryGetValue(connection, out var hot))
        {
            return hot;
        }

        var made = new HotConnection(Lifetime(source));
        hot = _hot.GetOrAdd(connection, made);
        if (!ReferenceEquals(hot, made))
        {
            made.Dispose();
        }

        return hot;
    }

    /// <summary>
    /// Drains a connection's pool: idle connections close now, busy ones when their call returns them. Calls keep running;
    /// the next connections log in afresh, with the password as it is now.
    /// </summary>
    /// <returns>False when the connection has no pool yet (nothing to drain).</returns>
    public bool Drain(string connection)
    {
        if (!_sources.TryGetValue(connection, out var source))
        {
            return false;
        }

        // The pool first, then the kept connection's generation. The other way round, a call that read the new generation could
        // still be lent an old idle connection the pool had not closed yet, and keep it, under that generation, past the drain.
        source.Clear();
        ClearProbes(connection);

        if (_hot.TryGetValue(connection, out var hot))
        {
            hot.Drop();
        }

        return true;
    }

    // A running process never sees its environment change: only a password file can be rotated under it.
    private static bool Rotatable(ConnectionConfig config) => config.Password.FilePath is not null;

    private NpgsqlDataSource Build(string name) => Build(name, keepNoticeDetail: false);

    private NpgsqlDataSource Build(string name, bool keepNoticeDetail)
    {
        var config = Config(name);
        var builder = new NpgsqlDataSourceBuilder(config.ConnectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= "gatehouse";
        if (keepNoticeDetail)
        {
            // Told apart in pg_stat_activity, and small: a probe is one short round trip, and only a statement not yet
            // classified needs one.
            builder.ConnectionStringBuilder.ApplicationName += " (statement probe)";
            builder.ConnectionStringBuilder.IncludeErrorDetail = true;
            builder.ConnectionStringBuilder.MaxPoolSize = Math.Min(builder.ConnectionStringBuilder.MaxPoolSize, ProbePoolSize);
            builder.ConnectionStringBuilder.MinPoolSize = Math.Min(builder.ConnectionStringBuilder.MinPoolSize, ProbePoolSize);
        }

        // Lets the executor tell a failed settings row (a missing masking profile) from a failed statement.
        builder.ConnectionStringBuilder.IncludeFailedBatchedCommand = true;
        NpgsqlSettings.ApplyTls(builder.ConnectionStringBuilder, config.Tls);
        FixedStatements.Configure(builder);

        if (config.Password.EnvironmentVariable is not null || config.Password.FilePath is not null)
        {
            // Read at each new physical connection, so a rotated password file needs no restart.
            builder.UsePasswordProvider(
                _ => config.Password.Read() ?? "",
                (_, _) => ValueTask.FromResult(config.Password.Read() ?? ""));
        }

        return builder.Build();
    }

    // The connection lifetime the data source was built with (FixedStatements.Configure bounds it).
    private static TimeSpan Lifetime(NpgsqlDataSource source) => TimeSpan.FromSeconds(new NpgsqlConnectionStringBuilder(source.ConnectionString).ConnectionLifetime);

    public async ValueTask DisposeAsync()
    {
        foreach (var hot in _hot.Values)
        {
            hot.Dispose();
        }

        foreach (var source in _sources.Values.Concat(_probes.Values))
        {
            await source.DisposeAsync().ConfigureAwait(false);
        }
    }
}
