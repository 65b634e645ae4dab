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
        await ProbeWritesAsync("current_setting('synchronous_commit')");

        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));

        var waits = (await QueryAsync("SHOW synchronous_commit")).Single();
        Assert.NotEqual("off", waits);
        Assert.Equal(["Started: off", $"Allowed: {waits}"], await QueryAsync("SELECT seen FROM probed ORDER BY n"));
    }

    // The chain head must come from a snapshot taken once the chain lock is held: a repeatable read transaction would keep
    // the one its first insert took, and miss a link another instance committed meanwhile.
    [Fact]
    public async Task The_writer_commits_read_committed_where_the_database_defaults_to_repeatable_read()
    {
        var database = new NpgsqlConnectionStringBuilder(_connectionString).Database;
        await ExecuteAsync($"ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'repeatable read'");
        var log = await OpenAsync();
        await ProbeWritesAsync("current_setting('transaction_isolation')");
        Assert.Equal(["repeatable read"], await QueryAsync("SHOW transaction_isolation"));

        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));

        Assert.Equal(["Started: read committed", "Allowed: read committed"], await QueryAsync("SELECT seen FROM probed ORDER BY n"));
    }

    // A trigger that notes, for each record written, its decision and what the expression reads inside the writer's transaction.
    private Task ProbeWritesAsync(string expression) => ExecuteAsync(
        "CREATE TABLE probed (n bigserial, seen text NOT NULL)",
        $"""
        CREATE FUNCTION probe_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO probed (seen) VALUES (new.decision || ': ' || {expression});
            RETURN new;
        END $$
        """,
        "CREATE TRIGGER probe_write AFTER INSERT OR UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION probe_write()");

    private async Task<List<string>> QueryAsync(string sql)
    {
        var builder = new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
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
