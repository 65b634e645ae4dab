using System.Collections.Concurrent;
using Gatehouse.Enforcement.Classification;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Watches each target's catalog (relations, columns and their defaults, views, functions, operators, casts, schemas,
/// inheritance, row-level security policies) with a small fingerprint query every 250 ms.
/// Cached classifications are used only under a version confirmed within the last second; any DDL or GRANT changes the
/// version and so retires them. A change can go unseen for at most that second (a poll stalled behind a busy pool keeps the
/// last version that long, not longer): PostgreSQL's own privileges still hold underneath.
/// </summary>
public sealed class PostgresCatalogVersions(PostgresTargets targets, TimeProvider time) : ICatalogVersionSource, IAsyncDisposable
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(1);

    // xmin changes whenever a catalog row is rewritten (ALTER, GRANT, CREATE OR REPLACE); count catches drops. Columns are
    // watched too: renaming or dropping one (a tagged one, say) rewrites only its pg_attribute row. Temporary relations (and
    // their columns) and the per-session schemas that hold them are left out: any session's temp tables come and go, agents can
    // create none, and no statement of theirs can name another session's.
    private const string Fingerprint =
        "SELECT (SELECT sum(xmin::text::bigint) || '/' || count(*) FROM pg_catalog.pg_class WHERE relpersistence <> 't')"
        + " || ':' || (SELECT sum(xmin::text::bigint) || '/' || count(*) FROM pg_catalog.pg_proc)"
        + " || ':' || (SELECT sum(xmin::text::bigint) || '/' || count(*) FROM pg_catalog.pg_operator)"
        + " || ':' || (SELECT sum(xmin::text::bigint) || '/' || count(*) FROM pg_catalog.pg_cast)"
        + " || ':' || (SELECT sum(xmin::text::bigint) || '/' || count(*) FROM pg_catalog.pg_rewrite)"
        + " || ':' || (SELECT sum(xmin::text::bigint) || '/' || count(*) FROM pg_catalog.pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_')"
        + " || ':' || (SELECT coalesce(sum(xmin::text::bigint), 0) || '/' || count(*) FROM pg_catalog.pg_inherits)"
        + " || ':' || (SELECT sum(a.xmin::text::bigint) || '/' || count(*) FROM pg_catalog.pg_attribute a"
        + " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE a.attnum > 0 AND c.relpersistence <> 't')"
        + " || ':' || (SELECT coalesce(sum(xmin::text::bigint), 0) || '/' || count(*) FROM pg_catalog.pg_attrdef)"
        + " || ':' || (SELECT coalesce(sum(xmin::text::bigint), 0) || '/' || count(*) FROM pg_catalog.pg_policy)"
        // Role memberships and the flags that decide which row-security policies a plan holds (pg_authid itself is not
        // readable, so each role's BYPASSRLS, SUPERUSER and INHERIT are summed in by oid).
        + " || ':' || (SELECT coalesce(sum(xmin::text::bigint), 0) || '/' || count(*) FROM pg_catalog.pg_auth_members)"
        + " || ':' || (SELECT sum(oid::bigint * (1 + rolbypassrls::int + 2 * rolsuper::int + 4 * rolinherit::int)) || '/' || count(*) FROM pg_catalog.pg_roles)";

    // Lazy, so calls arriving together for a new connection start one watch, not one loop each for the life of the process.
    private readonly ConcurrentDictionary<string, Lazy<Watch>> _watches = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();

    private TimeProvider Time => time;

    public string? Current(string connection)
    {
        var watch = _watches.GetOrAdd(connection, c => new Lazy<Watch>(() => new Watch(this, c))).Value;
        var seen = watch.Seen;
        return seen is not null && Time.GetUtcNow() - seen.Value.At < MaxAge ? seen.Value.Version : null;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_watches.Values.Where(w => w.IsValueCreated).Select(w => w.Value.Loop)).ConfigureAwait(false);
        _stop.Dispose();
    }

    // The fingerprint, and when its query began (it says what the catalog was then, however long it took); the wait for a
    // pooled connection before it does not count.
    private async Task<(string Fingerprint, DateTimeOffset AsOf)> ReadAsync(string connection, CancellationToken cancellationToken)
    {
        await using var pooled = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
        var conn = pooled.Connection;
        await using var command = new NpgsqlCommand(Fingerprint, conn);
        var asOf = Time.GetUtcNow();
        var fingerprint = (string)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        pooled.MarkCatalogReadsDone();
        return (fingerprint, asOf);
    }

    private sealed class Watch
    {
        private volatile Box? _seen;

        public Watch(PostgresCatalogVersions owner, string connection) => Loop = Task.Run(() => RunAsync(owner, connection));

        public Task Loop { get; }

        public (string Version, DateTimeOffset At)? Seen => _seen is { } box ? (box.Version, box.At) : null;

        private async Task RunAsync(PostgresCatalogVersions owner, string connection)
        {
            using var timer = new PeriodicTimer(PollInterval, owner.Time);
            var token = owner._stop.Token;
            do
            {
                try
                {
                    var (fingerprint, asOf) = await owner.ReadAsync(connection, token).ConfigureAwait(false);
                    _seen = new Box(fingerprint, asOf);
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or Enforcement.Execution.DatabaseException or InvalidOperationException)
                {
                    // Unknown version: callers classify afresh until the database answers again.
                    _seen = null;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            while (await WaitAsync(timer, token).ConfigureAwait(false));
        }

        private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken token)
        {
            try
            {
                return await timer.WaitForNextTickAsync(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        private sealed record Box(string Version, DateTimeOffset At);
    }
}
