using System.Diagnostics;
using Gatehouse.Connectors.State;
using Gatehouse.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>How a connection waits for the write lock another connection (another process, in use) holds on the state file.</summary>
public sealed class SqliteBusyWaitTests
{
    private static async Task<SqliteConnection> OpenAsync(string path, int commandTimeoutSeconds = 30, TimeSpan? wait = null)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, DefaultTimeout = commandTimeoutSeconds }.ToString());
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
        await ExecuteAsync(waiter, "BEGIN IMMEDIATE; INSERT INTO t VALUES ('waiter'); COMMIT");
        var written = Stopwatch.GetTimestamp();
        await release;

        Assert.True(written > released, "the waiter wrote while the holder still had the lock");
        await using var rows = waiter.CreateCommand();
        rows.CommandText = "SELECT group_concat(who, ',') FROM (SELECT who FROM t ORDER BY rowid)";
        Assert.Equal("holder,waiter", await rows.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_writer_gives_up_once_its_wait_is_over()
    {
        var path = Path.Combine(TestDirectory.Create("busy"), "state.db");
        await using var holder = await OpenAsync(path);
        // Microsoft.Data.Sqlite tries a busy statement again itself until its command timeout (1 s here): were the wait never
        // to give up, the statement would not return before the holder lets go, ten seconds on.
        await using var waiter = await OpenAsync(path, commandTimeoutSeconds: 1, wait: TimeSpan.FromMilliseconds(200));
        await ExecuteAsync(holder, "BEGIN IMMEDIATE; INSERT INTO t VALUES ('holder')");
        var release = Task.Delay(TimeSpan.FromSeconds(10)).ContinueWith(_ => ExecuteAsync(holder, "COMMIT")).Unwrap();

        var clock = Stopwatch.StartNew();
        var busy = await Assert.ThrowsAsync<SqliteException>(() => ExecuteAsync(waiter, "BEGIN IMMEDIATE"));
        Assert.Equal(5, busy.SqliteErrorCode); // SQLITE_BUSY
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"gave up after {clock.Elapsed}");
        await release;
    }

    [Fact]
    public void It_tries_again_every_50_microseconds_at_first_and_never_less_often_than_every_millisecond()
    {
        Assert.Equal(50u, SqliteBusyWait.DelayMicroseconds(0));
        Assert.Equal(250u, SqliteBusyWait.DelayMicroseconds(20));
        Assert.All(Enumerable.Range(0, 100_000), tries => Assert.InRange(SqliteBusyWait.DelayMicroseconds(tries), 50u, 1000u));
    }
}
