using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>The audit contract against the embedded SQLite state file.</summary>
public sealed class SqliteAuditLogTests : AuditLogContract
{
    private readonly string _path = Path.Combine(TestDirectory.Create("audit"), "state.db");

    protected override async Task<IAuditLog> OpenAsync(bool again = false) => await SqliteStateStore.OpenAsync(_path, CancellationToken.None);

    protected override async Task TamperAsync(string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={_path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task The_writer_flushes_the_log_its_commits_go_to_even_after_another_connection_checkpoints_it_and_closes()
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

    [Fact]
    public async Task A_log_that_cannot_be_flushed_fails_the_finished_record_and_the_next_call_writes_on_a_new_session()
    {
        var log = await SqliteStateStore.OpenAsync(_path, CancellationToken.None);
        var first = Record("a", Verdict.Allowed, DateTimeOffset.UtcNow);
        await log.BeginAsync(first with { Decision = Verdict.Started }, CancellationToken.None);
        var broken = log.WriterLog!;
        broken.Dispose();

        var failure = await Assert.ThrowsAsync<IOException>(() => log.CompleteAsync(first, CancellationToken.None).AsTask());
        Assert.Contains("could not be flushed to disk", failure.Message, StringComparison.Ordinal);

        await WriteAsync(log, Record("b", Verdict.Allowed, DateTimeOffset.UtcNow));
        Assert.NotNull(log.WriterLog);
        Assert.NotSame(broken, log.WriterLog);
        await AssertChainIntactAsync(log, sealedRecords: 2);
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
}
