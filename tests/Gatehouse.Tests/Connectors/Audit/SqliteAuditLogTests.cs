using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>The audit contract against the embedded SQLite state file.</summary>
public sealed class SqliteAuditLogTests : AuditLogContract
{
    private readonly string _path = Path.Combine(TestDirectory.Create("audit"), "state.db");

    protected override async Task<IAuditLog> OpenAsync(bool again = false) => await SqliteStateStore.OpenAsync(_path, CancellationToken.None);

    protected override Task TamperAsync(string sql) => ExecuteAsync(_path, sql);

    /// <summary>Runs SQL on the state file outside the gateway, as an admin with sqlite3 would.</summary>
    internal static async Task ExecuteAsync(string path, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task The_state_file_and_its_log_are_readable_by_the_gateways_user_only()
    {
        var log = await OpenAsync();
        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_path + "-wal"));
    }

    [Fact]
    public async Task A_state_file_an_older_version_left_readable_by_others_is_made_private_when_opened()
    {
        var log = await OpenAsync();
        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));
        const UnixFileMode Loose = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        File.SetUnixFileMode(_path, Loose);
        File.SetUnixFileMode(_path + "-wal", Loose);

        await OpenAsync(again: true);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_path + "-wal"));
    }

    [Fact]
    public async Task Processes_starting_together_on_an_older_state_file_each_open_it_and_add_its_new_columns_once()
    {
        await OpenAsync();
        // As a state file from before the columns existed.
        await TamperAsync("ALTER TABLE statement_approvals DROP COLUMN delegated_by; ALTER TABLE access_requests DROP COLUMN delegated_by; ALTER TABLE audit DROP COLUMN delegated_by");

        // Several stdio gateways started at once after an upgrade.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => SqliteStateStore.OpenAsync(_path, CancellationToken.None))));
        await using var connection = new SqliteConnection($"Data Source={_path}");
        await connection.OpenAsync();
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT count(*) FROM pragma_table_info('statement_approvals') WHERE name = 'delegated_by'";
        Assert.Equal(1L, await count.ExecuteScalarAsync());
    }

    // SQLite rewrites an index's entry whenever an update sets one of its columns, even to the value it had, so completing a
    // started record leaves them out; a trigger on updates that set them counts the rewrites.
    [Fact]
    public async Task Completing_a_started_record_sets_no_indexed_column_unless_its_time_or_agent_changed()
    {
        var log = await OpenAsync();
        await TamperAsync("""
            CREATE TABLE index_rewrites (id TEXT NOT NULL);
            CREATE TRIGGER count_index_rewrites AFTER UPDATE OF time_ms, agent ON audit BEGIN INSERT INTO index_rewrites VALUES (new.id); END;
            """);
        await WriteAsync(log, Record("analyst", Verdict.Allowed, DateTimeOffset.UtcNow));
        var moved = Record("first", Verdict.Started, DateTimeOffset.UtcNow.AddMinutes(-1));
        await log.BeginAsync(moved, CancellationToken.None);
        await log.CompleteAsync(moved with { Agent = "second", Decision = Verdict.Allowed }, CancellationToken.None);

        await using var connection = new SqliteConnection($"Data Source={_path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id FROM index_rewrites";
        var rewritten = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                rewritten.Add(reader.GetString(0));
            }
        }

        Assert.Equal([moved.Id], rewritten);
        await AssertChainIntactAsync(log, sealedRecords: 2);
    }

    [Fact]
    public async Task The_handle_the_writer_flushes_stays_on_the_log_its_commits_go_to_after_another_connection_checkpoints_it_and_closes()
    {
        var log = await SqliteStateStore.OpenAsync(_path, CancellationToken.None);
        await WriteAsync(log, Record("a", Verdict.Allowed, DateTimeOffset.UtcNow));
        var handle = log.WriterLog;
        Assert.NotNull(handle);
        var wal = Path.GetFullPath(_path) + "-wal";
        Assert.Equal(wal, OpenFile(handle));

        // Another process empties the log into the file and goes away: the log is rewound, not removed or replaced.
        await using (var other = new SqliteConnection($"Data Source={_path};Pooling=False"))
        {
            await other.OpenAsync();
            await using var checkpoint = other.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            await checkpoint.ExecuteNonQueryAsync();
        }

        Assert.Equal(0, new FileInfo(wal).Length);
        await WriteAsync(log, Record("b", Verdict.Allowed, DateTimeOffset.UtcNow));
        Assert.Same(handle, log.WriterLog);
        Assert.Equal(wal, OpenFile(handle));
        Assert.True(new FileInfo(wal).Length > 0);
        Assert.Equal(new FileInfo(wal).Length, RandomAccess.GetLength(handle));
    }

    // SQLite commits and the flush are synchronous, so a write that found the writer idle is durable when the call returns:
    // it went to no other thread and back, which is what an idle gateway's latency is made of.
    [Fact]
    public async Task A_write_that_finds_the_writer_idle_is_committed_and_flushed_by_its_caller()
    {
        var log = await SqliteStateStore.OpenAsync(_path, CancellationToken.None);
        var record = Record("a", Verdict.Allowed, DateTimeOffset.UtcNow);
        await WriteAsync(log, Record("warm", Verdict.Allowed, DateTimeOffset.UtcNow));

        var begin = log.BeginAsync(record with { Decision = Verdict.Started }, CancellationToken.None);
        Assert.True(begin.IsCompletedSuccessfully);
        var complete = log.CompleteAsync(record, CancellationToken.None);
        Assert.True(complete.IsCompletedSuccessfully);
        await AssertChainIntactAsync(log, sealedRecords: 2);
    }

    [Fact]
    public async Task After_a_flush_fails_no_call_can_finish_until_a_restart_though_calls_still_start()
    {
        var log = await SqliteStateStore.OpenAsync(_path, CancellationToken.None);
        var first = Record("a", Verdict.Allowed, DateTimeOffset.UtcNow);
        await log.BeginAsync(first with { Decision = Verdict.Started }, CancellationToken.None);
        var broken = log.WriterLog!;
        broken.Dispose(); // the next flush fails, as on a disk error

        var failure = await Assert.ThrowsAsync<IOException>(() => log.CompleteAsync(first, CancellationToken.None).AsTask());
        Assert.Contains("could not be flushed to disk", failure.Message, StringComparison.Ordinal);

        // A record that cannot be stored (a second start of the same call) makes the writer open a new session, with a
        // good handle on the log. A flush on it could not vouch for pages the failed one dropped: later calls fail too.
        await Assert.ThrowsAnyAsync<Exception>(() => log.BeginAsync(first with { Decision = Verdict.Started }, CancellationToken.None).AsTask());
        var second = Record("b", Verdict.Allowed, DateTimeOffset.UtcNow);
        await log.BeginAsync(second with { Decision = Verdict.Started }, CancellationToken.None);
        Assert.NotSame(broken, log.WriterLog);
        Assert.False(log.WriterLog!.IsClosed);
        var later = await Assert.ThrowsAsync<IOException>(() => log.CompleteAsync(second, CancellationToken.None).AsTask());
        Assert.Contains("until the gateway restarts", later.Message, StringComparison.Ordinal);
        // Readiness says so, so a load balancer sends the instance no more calls.
        await Assert.ThrowsAsync<IOException>(() => log.PingAsync(CancellationToken.None));

        // A restarted gateway finishes calls again. The two failed calls were committed and sealed before their flushes
        // failed, so the chain holds them: the log may show more than was answered, never less.
        var restarted = await SqliteStateStore.OpenAsync(_path, CancellationToken.None);
        await restarted.PingAsync(CancellationToken.None);
        await WriteAsync(restarted, Record("c", Verdict.Allowed, DateTimeOffset.UtcNow));
        await AssertChainIntactAsync(restarted, sealedRecords: 3);
    }

    // The file an open descriptor of this process is on, as the kernel names it (with " (deleted)" once it is unlinked).
    private static string? OpenFile(Microsoft.Win32.SafeHandles.SafeFileHandle handle) =>
        File.ResolveLinkTarget($"/proc/self/fd/{handle.DangerousGetHandle()}", returnFinalTarget: false)?.FullName;
}

/// <summary>The state contract against the embedded SQLite state file.</summary>
public sealed class SqliteStateStoreTests : StateStoreContract
{
    private readonly string _path = Path.Combine(TestDirectory.Create("state"), "state.db");

    protected override async Task<SqlStateStore> OpenAsync(bool again = false) => await SqliteStateStore.OpenAsync(_path, CancellationToken.None);

    protected override Task ExecuteAsync(string sql) => SqliteAuditLogTests.ExecuteAsync(_path, sql);

    // The listing's SQL is the same for both stores; the flood is filed here, where a thousand writes take half a second
    // (in PostgreSQL each waits its turn on the change counter's row, 30 s in all).
    [Fact]
    public async Task A_thousand_newer_requests_hide_no_active_grant()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var granted = Request("analyst", now.AddMinutes(-30));
        await store.CreateAsync(granted, int.MaxValue, CancellationToken.None);
        Assert.True(await store.DecideAsync(granted.Id, new ApprovalVote("alice", true, now.AddMinutes(-30), null), 1, TimeSpan.FromDays(30), now.AddMinutes(-30), CancellationToken.None));

        // An agent calling request_access a thousand times (a minute at the default quota) files a thousand newer requests.
        for (var batch = 0; batch < 1_000; batch += 50)
        {
            await Task.WhenAll(Enumerable.Range(batch, 50).Select(i => store.CreateAsync(Request("flooder", now.AddMinutes(-20).AddMilliseconds(i)), int.MaxValue, CancellationToken.None).AsTask()));
        }

        Assert.Equal(granted.Id, Assert.Single(await store.ListAsync(AccessRequestStatus.Approved, now, CancellationToken.None)).Id);
        Assert.Equal(1_000, (await store.ListAsync(AccessRequestStatus.Pending, now, CancellationToken.None)).Count);

        // Nor any request of a quiet agent from the agent itself, and the flooder's pending ones are all counted.
        Assert.Equal(granted.Id, Assert.Single(await store.ListOfAgentAsync("analyst", 20, now, CancellationToken.None)).Id);
        Assert.Equal(1_000, await store.CountPendingAsync("flooder", now, CancellationToken.None));
    }
}
