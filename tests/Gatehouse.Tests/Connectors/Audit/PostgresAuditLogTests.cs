using System.Collections.Concurrent;
using System.Diagnostics;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;
using Npgsql;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>The audit contract against the PostgreSQL store, each test in a database of its own.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresAuditLogTests(PostgresFixture pg) : AuditLogContract, IAsyncLifetime
{
    private readonly List<PostgresStateStore> _opened = [];
    private string _connectionString = "";

    public async Task InitializeAsync() => _connectionString = await pg.CreateDatabaseAsync("audit");

    public async Task DisposeAsync()
    {
        foreach (var log in _opened)
        {
            await log.DisposeAsync();
        }
    }

    protected override async Task<IAuditLog> OpenAsync(bool again = false)
    {
        var log = await PostgresStateStore.OpenAsync(_connectionString, () => null, CancellationToken.None);
        _opened.Add(log);
        return log;
    }

    protected override async Task TamperAsync(string sql) =>
        await ExecuteAsync(sql.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private async Task ExecuteAsync(params string[] statements)
    {
        var builder = new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        foreach (var statement in statements)
        {
            await using var command = new NpgsqlCommand(statement, connection);
            await command.ExecuteNonQueryAsync();
        }
    }

    // Each statement sent on its own is a round trip: a call's two writes took nine, seven statements (two of them changing
    // the session's synchronous_commit) and two commits. Its started record now goes in one, and its finished record, sealed
    // into the chain, in two: one traced command each.
    [Fact]
    public async Task A_calls_two_writes_reach_the_store_in_three_round_trips()
    {
        var log = await OpenAsync();
        await WriteAsync(log, Record("warm", Verdict.Allowed, DateTimeOffset.UtcNow));
        var database = new NpgsqlConnectionStringBuilder(_connectionString).Database;
        var roundTrips = new ConcurrentQueue<string>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = activity =>
            {
                if (Equals(activity.GetTagItem("db.namespace"), database))
                {
                    roundTrips.Enqueue(activity.DisplayName);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));

        Assert.Equal(3, roundTrips.Count);
        await AssertChainIntactAsync(log, sealedRecords: 2);
    }

    // Under power_loss (the default) a started record's commit need not wait for the disk, and a finished record's must; each
    // transaction says so itself, so a trigger sees the setting each commit ran under.
    [Fact]
    public async Task A_started_record_commits_without_waiting_for_the_disk_and_its_finished_record_waits()
    {
        var log = await OpenAsync();
        await ExecuteAsync(
            "CREATE TABLE commit_settings (n bigserial, decision text NOT NULL, synchronous_commit text NOT NULL)",
            """
            CREATE FUNCTION note_commit_setting() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO commit_settings (decision, synchronous_commit) VALUES (new.decision, current_setting('synchronous_commit'));
                RETURN new;
            END $$
            """,
            "CREATE TRIGGER note_commit_setting AFTER INSERT OR UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION note_commit_setting()");

        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));

        var builder = new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT decision || ': ' || synchronous_commit FROM commit_settings ORDER BY n", connection);
        var seen = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                seen.Add(reader.GetString(0));
            }
        }

        Assert.Equal(["Started: off", "Allowed: on"], seen);
    }
}

/// <summary>The state contract against PostgreSQL, each test in a database of its own.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresStateStoreTests(PostgresFixture pg) : StateStoreContract, IAsyncLifetime
{
    private readonly List<PostgresStateStore> _opened = [];
    private string _connectionString = "";

    public async Task InitializeAsync() => _connectionString = await pg.CreateDatabaseAsync("state");

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            await store.DisposeAsync();
        }
    }

    protected override async Task<SqlStateStore> OpenAsync(bool again = false)
    {
        var store = await PostgresStateStore.OpenAsync(_connectionString, () => null, CancellationToken.None);
        _opened.Add(store);
        return store;
    }
}
