using System.Diagnostics;
using Gatehouse.Connectors.State;
using Gatehouse.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>How a connection waits for the write lock another connection (another process, in use) holds on the state file.</summary>
public sealed class SqliteBusyWaitTests
{
    private static async Task<SqliteConnection> OpenAsync(string path, TimeSpan? wait = null)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        await connection.OpenAsync();
        Assert.True(SqliteBusyWait.TryInstall(connection, wait));
        await using var setup = connection.CreateCommand();
        setup.CommandText = "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t (who TEXT)";
        await setup.ExecuteNonQueryAsync();
        return connection;
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    // Straight to SQLite, past Microsoft.Data.Sqlite's own retrying of a busy statement (150 ms sleeps): what is measured
    // here is the busy handler alone.
    private static int BeginImmediate(SqliteConnection connection) => SQLitePCL.raw.sqlite3_exec(connection.Handle, "BEGIN IMMEDIATE");

    private const int SqliteBusy = 5;

    [Fact]
    public async Task A_writer_that_finds_the_lock_taken_waits_for_it_and_then_writes()
    {
        var path = Path.Combine(TestDirectory.Create("busy"), "state.db");
        await using var holder = await OpenAsync(path);
        await using var waiter = await OpenAsync(path);
        await ExecuteAsync(holder, "BEGIN IMMEDIATE; INSERT INTO t VALUES ('holder')");

        var released = 0L;
        var release = Task.Run(async () =>
        {
            await Task.Delay(300);
            released = Stopwatch.GetTimestamp();
            await ExecuteAsync(holder, "COMMIT");
        });
        Assert.Equal(0, BeginImmediate(waiter));
        var locked = Stopwatch.GetTimestamp();
        await ExecuteAsync(waiter, "INSERT INTO t VALUES ('waiter'); COMMIT");
        await release;

        Assert.True(locked > released, "the waiter took the lock while the holder still had it");
        await using var rows = waiter.CreateCommand();
        rows.CommandText = "SELECT group_concat(who, ',') FROM (SELECT who FROM t ORDER BY rowid)";
        Assert.Equal("holder,waiter", await rows.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_writer_gives_up_once_its_wait_is_over()
    {
        var path = Path.Combine(TestDirectory.Create("busy"), "state.db");
        await using var holder = await OpenAsync(path);
        await using var waiter = await OpenAsync(path, wait: TimeSpan.FromMilliseconds(200));
        await ExecuteAsync(holder, "BEGIN IMMEDIATE; INSERT INTO t VALUES ('holder')");
        // Were the wait never to give up, the waiter would get the lock when the holder lets go, twenty seconds on (the wait is
        // counted in sleeps, which a busy machine stretches; the bound leaves room for that).
        using var holding = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var release = Task.Delay(Timeout.Infinite, holding.Token).ContinueWith(_ => ExecuteAsync(holder, "COMMIT"), TaskScheduler.Default).Unwrap();

        var clock = Stopwatch.StartNew();
        Assert.Equal(SqliteBusy, BeginImmediate(waiter));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(15));
        await holding.CancelAsync();
        await release;
    }

    [Fact]
    public async Task The_state_stores_connections_wait_so()
    {
        var path = Path.Combine(TestDirectory.Create("busy"), "state.db");
        var store = await SqliteStateStore.OpenAsync(path, CancellationToken.None);
        await using var holder = await OpenAsync(path);
        await using var waiter = await store.OpenConnectionAsync(CancellationToken.None);
        await ExecuteAsync(holder, "BEGIN IMMEDIATE; INSERT INTO t VALUES ('holder')");
        var release = Task.Delay(200).ContinueWith(_ => ExecuteAsync(holder, "COMMIT")).Unwrap();

        // Without a busy handler SQLite answers SQLITE_BUSY at once; its own (busy_timeout) would report its timeout here,
        // which installing any other handler sets to 0.
        Assert.Equal(0, BeginImmediate(waiter));
        await ExecuteAsync(waiter, "ROLLBACK");
        await release;
        await using var timeout = waiter.CreateCommand();
        timeout.CommandText = "PRAGMA busy_timeout";
        Assert.Equal(0L, await timeout.ExecuteScalarAsync());
    }

    [Theory]
    [InlineData(0, 50, 0)]
    [InlineData(19, 50, 950)]
    [InlineData(20, 250, 1_000)]
    [InlineData(99, 250, 20_750)]
    [InlineData(100, 1_000, 21_000)]
    [InlineData(199, 1_000, 120_000)]
    [InlineData(200, 5_000, 121_000)]
    [InlineData(6_000, 5_000, 29_121_000)]
    public void It_sleeps_50_microseconds_between_its_first_tries_and_backs_off_to_5_ms(int tries, uint delay, long slept)
    {
        Assert.Equal(delay, SqliteBusyWait.DelayMicroseconds(tries));
        Assert.Equal(slept, SqliteBusyWait.SleptMicroseconds(tries));
        Assert.Equal(SqliteBusyWait.SleptMicroseconds(tries) + delay, SqliteBusyWait.SleptMicroseconds(tries + 1));
    }
}
