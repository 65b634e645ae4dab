using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.Win32.SafeHandles;

namespace Gatehouse.Connectors.State;

/// <summary>The audit log in the state file: <see cref="SqlAuditLog"/> over SQLite.</summary>
public sealed partial class SqliteStateStore : SqlStateStore
{
    protected override async Task<DbConnection> OpenAuditConnectionAsync(CancellationToken cancellationToken) =>
        await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

    // Deferred: a snapshot for reading that takes no write lock (BEGIN IMMEDIATE would hold up every writer while verify reads).
    protected override Task<DbTransaction> BeginSnapshotAsync(DbConnection connection, CancellationToken cancellationToken) =>
        Task.FromResult<DbTransaction>(((SqliteConnection)connection).BeginTransaction(deferred: true));

    // With synchronous=FULL, SQLite syncs the write-ahead log inside the commit, while it holds the file's write lock: every
    // process on the file then waits for each other's disk flushes in turn, one at a time. Instead the writer commits at
    // NORMAL (the commit reaches the operating system) and flushes the log itself once the lock is released, so commits
    // queue only for the write and concurrent flushes share the disk's. Nothing is lost by it: a checkpoint syncs the log
    // before copying it into the file, and syncs the file before the log is reused or removed; and while this connection is
    // open the log is neither removed nor replaced, so the handle stays on the file the commits go to. The log is also
    // checksummed frame by frame, so a power cut keeps a prefix of the commits: every flushed one and none after a gap.
    // Only on Linux, where the flush is fsync(2) (DiskFlush) and tested; elsewhere SQLite keeps FULL and flushes itself
    // (Windows, for one, flushes only handles opened for writing, which SQLite's share mode there may refuse).
    protected override async Task<SafeFileHandle?> OpenLogFileAsync(DbConnection writer, CancellationToken cancellationToken)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        await using var mode = writer.CreateCommand();
        mode.CommandText = "PRAGMA journal_mode";
        if (!string.Equals(await mode.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string, "wal", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        // The statement above read the file, which opens (creating if needed) its log.
        return File.OpenHandle(((SqliteConnection)writer).DataSource + "-wal", FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
    }

    // PostgreSQL parses each statement on the server either way, and Npgsql's pool already keeps its connections; SQLite
    // compiles statements in the process, so reusing them is what saves the time.
    protected override bool KeepsReaders => true;

    // SQLite reads $1..$n as parameter names.
    protected override void Bind(DbCommand command, IReadOnlyList<object?> values)
    {
        var parameters = ((SqliteCommand)command).Parameters;
        for (var i = 0; i < values.Count; i++)
        {
            parameters.AddWithValue($"${i + 1}", values[i] ?? DBNull.Value);
        }
    }

    protected override string Contains(string haystack, string needle) => $"instr({haystack}, {needle}) > 0";

    // The file's clock is the host's: SQLite has no other.
    protected override string NowMsSql => "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
}
