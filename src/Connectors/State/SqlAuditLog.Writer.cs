using System.Data.Common;
using System.Threading.Channels;
using Gatehouse.Enforcement.Audit;
using Microsoft.Win32.SafeHandles;

namespace Gatehouse.Connectors.State;

/// <summary>
/// Group commit: every record write (a call starting, a call finishing and being sealed) goes through one writer per store,
/// which takes whatever has queued up and stores it in one transaction, in order. A caller's write returns only once its
/// transaction has committed; under load, many records share one commit (one fsync) instead of paying one each.
/// </summary>
/// <remarks>
/// Under <see cref="AuditDurability.PowerLoss"/> only commits holding a finished record wait for the disk. A commit of started
/// records alone waits for the operating system: the record is stored (other readers see it, and it survives the gateway
/// dying) before the statement runs, and the next flushing commit takes it to disk with it, since both stores flush their log
/// in order. No result leaves the gateway, and no statement's write to the database commits, before the call's finished
/// record is flushed, so a power cut can lose only the started record of a call whose result never left. One fsync per call
/// instead of two. Where the store has a log file the writer flushes itself (<see cref="OpenLogFileAsync"/>), a flusher does
/// that beside the writer: started records are released once their commit returns, finished ones once a flush begun after
/// it returns, and the writer commits the next batch during the flush. A write that finds nothing queued and nobody
/// committing is committed (and flushed, if nobody is flushing) by its caller: an idle gateway then pays no hand-offs to the
/// writer, the flusher and back, each a thread waking up.
/// </remarks>
public abstract partial class SqlAuditLog
{
    private const int MaxBatch = 512;

    // Not single-reader channels: those cannot count what waits in them, which tells a caller whether it may commit itself.
    private readonly Channel<PendingWrite> _writes = Channel.CreateUnbounded<PendingWrite>();
    private readonly Lock _writerGate = new();
    private Task? _writer;

    // Held by whoever commits (the writer, or a caller committing its own write) and by whoever flushes (the flusher, or
    // that caller flushing it). A caller flushing takes the second before it lets go of the first, so no session can be
    // dropped, and its log closed by the flusher, between its commit and its flush.
    private readonly SemaphoreSlim _committing = new(1, 1);
    private readonly SemaphoreSlim _flushing = new(1, 1);

    // Commits whose finished records wait for the log to reach the disk, in commit order. The flusher takes all that have
    // queued up and flushes once for them, while the writer goes on to the next commit.
    private readonly Channel<Committed> _committed = Channel.CreateUnbounded<Committed>();
    private Task? _flusher;

    // Set by the first flush that fails, and kept: no later flush can vouch for what it could not write.
    private IOException? _flushFailure;

    /// <summary>Why no finished record can be made durable any more (a flush failed), or null.</summary>
    protected IOException? FlushFailure => Volatile.Read(ref _flushFailure);

    // The writer's own connection, opened once and kept with its statements: a commit then costs the statements and the
    // fsync, not a connection checkout and a compilation of each statement. Dropped and reopened after any failure.
    private StatementSession? _session;

    /// <summary>The log file the writer's session flushes after its commits, while it has one (for tests).</summary>
    internal SafeFileHandle? WriterLog => _session?.Log;

    /// <summary>Holds commits back until disposed, so the writes made meanwhile queue up and share one commit (for tests).</summary>
    internal async Task<IDisposable> HoldCommitsAsync()
    {
        await _committing.WaitAsync().ConfigureAwait(false);
        return new Held(_committing);
    }

    private sealed class Held(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }

    /// <summary>What a stored record survives; set by the gateway from <c>gateway.audit.durability</c> before it serves.</summary>
    public AuditDurability Durability { get; set; } = AuditDurability.PowerLoss;

    /// <summary>A record waiting to be stored: <see cref="Seal"/> marks a finished call, stored in place and sealed into the chain.</summary>
    private sealed record PendingWrite(AuditRecord Record, bool Seal)
    {
        public TaskCompletionSource Stored { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>
    /// A commit whose <see cref="Finished"/> records are released once <see cref="Log"/> is flushed; or, with <see cref="Close"/>,
    /// word that the session owning the log is gone, so the flusher closes it once the commits queued before are flushed.
    /// </summary>
    private sealed record Committed(SafeFileHandle Log, PendingWrite[] Finished, bool Close = false);

    public ValueTask BeginAsync(AuditRecord record, CancellationToken cancellationToken) => WriteAsync(new PendingWrite(record.Storable(), Seal: false), cancellationToken);

    /// <summary>
    /// Stores the record's final state and seals it into the hash chain in the same transaction: the chain entry holds the
    /// record exactly as stored and the hash of the entry before it, so changing, removing, adding or reordering records
    /// shows in <see cref="VerifyChainAsync"/>.
    /// </summary>
    public ValueTask CompleteAsync(AuditRecord record, CancellationToken cancellationToken) =>
        WriteAsync(new PendingWrite(record.Storable() with { Time = FromMs(ToMs(record.Time)) }, Seal: true), cancellationToken);

    private async ValueTask WriteAsync(PendingWrite write, CancellationToken cancellationToken)
    {
        StartLoops();
        if (_writes.Reader.Count == 0 && _committing.Wait(0, CancellationToken.None))
        {
            // Nobody is committing and nothing waits: commit on this thread rather than wake the writer for it.
            await CommitHereAsync(write).ConfigureAwait(false);
            await write.Stored.Task.ConfigureAwait(false);
            return;
        }

        if (!_writes.Writer.TryWrite(write))
        {
            throw new InvalidOperationException("The audit writer has stopped.");
        }

        await write.Stored.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private void StartLoops()
    {
        if (_flusher is not null)
        {
            return;
        }

        lock (_writerGate)
        {
            _writer ??= Task.Run(WriterLoopAsync, CancellationToken.None);
            _flusher ??= Task.Run(FlusherLoopAsync, CancellationToken.None);
        }
    }

    /// <summary>Commits one write while holding <see cref="_committing"/>, which it releases; then flushes it here when nobody else is.</summary>
    private async Task CommitHereAsync(PendingWrite write)
    {
        SafeFileHandle? flushHere = null;
        try
        {
            flushHere = await CommitAsync([write], mayFlushHere: true).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (await StoredAnywayAsync(write).ConfigureAwait(false))
            {
                write.Stored.TrySetResult();
            }
            else
            {
                write.Stored.TrySetException(e);
            }
        }
        finally
        {
            _committing.Release();
        }

        if (flushHere is not null)
        {
            try
            {
                Settle([write], Flush(flushHere));
            }
            finally
            {
                _flushing.Release();
            }
        }
    }

    private async Task WriterLoopAsync()
    {
        var batch = new List<PendingWrite>(MaxBatch);
        while (await _writes.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            await _committing.WaitAsync().ConfigureAwait(false);
            try
            {
                batch.Clear();
                while (batch.Count < MaxBatch && _writes.Reader.TryRead(out var write))
                {
                    batch.Add(write);
                }

                await CommitBatchAsync(batch).ConfigureAwait(false);
            }
            finally
            {
                _committing.Release();
            }
        }
    }

    private async Task CommitBatchAsync(List<PendingWrite> batch)
    {
        try
        {
            await CommitAsync(batch, mayFlushHere: false).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // One bad record must not fail the calls it happened to share a commit with: store each on its own, unless the
            // commit went through after all.
            foreach (var write in batch)
            {
                try
                {
                    if (await StoredAnywayAsync(write).ConfigureAwait(false))
                    {
                        write.Stored.TrySetResult();
                        continue;
                    }

                    await CommitAsync([write], mayFlushHere: false).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    write.Stored.TrySetException(e);
                }
            }
        }
    }

    /// <summary>
    /// Whether a write whose commit failed is stored all the same, exactly as written. Across the network a commit can go
    /// through with its reply lost; writing the record again would then fail a started record's call as a duplicate and link
    /// a finished one twice. What a commit there made visible is as durable as the commit asked (PostgreSQL makes a commit
    /// visible only after its own wait). A store on local disk gets no such failure, so only one that batches commits looks;
    /// a look that fails says no.
    /// </summary>
    private async Task<bool> StoredAnywayAsync(PendingWrite write)
    {
        if (!BatchesCommits)
        {
            return false;
        }

        try
        {
            if (write.Seal)
            {
                var seals = await AuditQueryAsync("SELECT sealed FROM audit_chain WHERE record_id = $1", [write.Record.Id], r => r.GetString(0), CancellationToken.None).ConfigureAwait(false);
                return seals.Contains(AuditChain.Canonical(write.Record), StringComparer.Ordinal);
            }

            return await GetAsync(write.Record.Id, CancellationToken.None).ConfigureAwait(false) is { } stored
                && AuditValues(stored).SequenceEqual(AuditValues(write.Record));
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>
    /// Stores the writes in one transaction and releases their callers: each once its record is as durable as
    /// <see cref="Durability"/> asks. Throws, releasing none, when the transaction fails. With <paramref name="mayFlushHere"/>,
    /// when the log must be flushed and nobody is flushing, returns it instead of handing it to the flusher, holding
    /// <see cref="_flushing"/> for the caller to flush and settle the finished writes itself.
    /// </summary>
    private async Task<SafeFileHandle?> CommitAsync(IReadOnlyList<PendingWrite> writes, bool mayFlushHere)
    {
        var flush = MustFlush(Durability, writes.Select(w => w.Seal));
        var session = await StoreAsync(writes, flush).ConfigureAwait(false);
        if (!flush || session.Log is not { } log)
        {
            // The commit itself waited for whatever it had to.
            Release(writes, seal: null);
            return null;
        }

        // Committed and visible, so the started calls go on; the finished ones wait for the flush.
        Release(writes, seal: false);
        if (mayFlushHere && _committed.Reader.Count == 0 && _flushing.Wait(0))
        {
            return log;
        }

        _committed.Writer.TryWrite(new Committed(log, [.. writes.Where(w => w.Seal)]));
        return null;
    }

    private async Task FlusherLoopAsync()
    {
        var waiting = new List<Committed>();
        while (await _committed.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            await _flushing.WaitAsync().ConfigureAwait(false);
            try
            {
                waiting.Clear();
                while (_committed.Reader.TryRead(out var commit))
                {
                    waiting.Add(commit);
                }

                FlushAll(waiting);
            }
            finally
            {
                _flushing.Release();
            }
        }
    }

    // Each of these commits returned before this flush starts, so one flush of its log takes it to disk, with every commit
    // before it (this process's and any other's): under load, one flush serves many.
    private void FlushAll(List<Committed> waiting)
    {
        foreach (var onLog in waiting.GroupBy(c => c.Log))
        {
            var finished = onLog.SelectMany(c => c.Finished).ToList();
            Settle(finished, finished.Count > 0 ? Flush(onLog.Key) : null);
            if (onLog.Any(c => c.Close))
            {
                onLog.Key.Dispose();
            }
        }
    }

    private static void Settle(IEnumerable<PendingWrite> finished, IOException? failure)
    {
        foreach (var write in finished)
        {
            if (failure is null)
            {
                write.Stored.TrySetResult();
            }
            else
            {
                write.Stored.TrySetException(failure);
            }
        }
    }

    private IOException? Flush(SafeFileHandle log)
    {
        if (FlushFailure is { } failed)
        {
            return failed;
        }

        try
        {
            DiskFlush.Flush(log);
            return null;
        }
        catch (Exception e)
        {
            // After a failed fsync the kernel may have dropped the pages it could not write and marked them clean, so a
            // later flush, on this handle or any other, would succeed without them. Nothing committed since is known to be
            // on disk: every finished record fails from now on, until a restart (as PostgreSQL stops on a failed fsync).
            var failure = new IOException($"The audit log could not be flushed to disk ({e.Message}). No finished record is known to be durable since, so no call can finish until the gateway restarts; check the disk holding the state file.", e);
            Volatile.Write(ref _flushFailure, failure);
            return failure;
        }
    }

    private static void Release(IReadOnlyList<PendingWrite> writes, bool? seal)
    {
        foreach (var write in writes)
        {
            if (seal is null || write.Seal == seal)
            {
                write.Stored.TrySetResult();
            }
        }
    }

    /// <summary>Commits the writes on the writer's session; the session, for the flush after it.</summary>
    private async Task<StatementSession> StoreAsync(IReadOnlyList<PendingWrite> batch, bool flush)
    {
        var cancellationToken = CancellationToken.None;
        var session = _session ??= await OpenWriterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (BatchesCommits)
            {
                await StoreInBatchesAsync(session.Connection, batch, flush, cancellationToken).ConfigureAwait(false);
                return session;
            }

            if (session.Log is null)
            {
                await SetFlushAsync(session, flush, cancellationToken).ConfigureAwait(false);
            }

            await StoreAsync(session, batch, cancellationToken).ConfigureAwait(false);
            return session;
        }
        catch
        {
            await DropSessionAsync(session).ConfigureAwait(false);
            throw;
        }
    }

    private async Task<StatementSession> OpenWriterAsync(CancellationToken cancellationToken)
    {
        var session = new StatementSession(await OpenAuditConnectionAsync(cancellationToken).ConfigureAwait(false), Bind);
        try
        {
            // With a log file to flush, every commit only waits for the operating system, and the writer flushes after it.
            if (await OpenLogFileAsync(session.Connection, cancellationToken).ConfigureAwait(false) is { } log)
            {
                session.Log = log;
                await SetFlushAsync(session, flush: false, cancellationToken).ConfigureAwait(false);
            }

            return session;
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task DropSessionAsync(StatementSession session)
    {
        if (ReferenceEquals(_session, session))
        {
            _session = null;
        }

        RetireLog(session);
        await session.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the log from a session being closed and has the flusher close it after the commits queued on it: they are
    /// committed, and still to be flushed. (Closing the connection first is safe: were it the file's last, SQLite would
    /// checkpoint the log into the file and sync it before removing the log.)
    /// </summary>
    private void RetireLog(StatementSession session)
    {
        if (session.Log is not { } log)
        {
            return;
        }

        session.Log = null;
        lock (_writerGate)
        {
            if (_flusher is null)
            {
                log.Dispose();
            }
            else
            {
                _committed.Writer.TryWrite(new Committed(log, [], Close: true));
            }
        }
    }

    /// <summary>Whether a commit of this batch must reach the disk before its callers go on.</summary>
    internal static bool MustFlush(AuditDurability durability, IEnumerable<bool> seals) =>
        durability == AuditDurability.PowerLoss && seals.Any(seal => seal);

    // Set on the connection before the transaction begins (SQLite refuses to change it inside one), and only when it changes.
    private async Task SetFlushAsync(StatementSession session, bool flush, CancellationToken cancellationToken)
    {
        if (session.Flushes == flush)
        {
            return;
        }

        await session.Command(FlushSetting(flush), [], null).ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        session.Flushes = flush;
    }

    private async Task StoreAsync(StatementSession session, IReadOnlyList<PendingWrite> batch, CancellationToken cancellationToken)
    {
        await using var transaction = await session.Connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        (long Seq, string Hash)? head = null;
        foreach (var write in batch)
        {
            var record = write.Record;
            var values = AuditValues(record);
            var stored = await session.Command(write.Seal ? InsertFinished : InsertStarted, values, transaction).ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            if (!write.Seal)
            {
                continue;
            }

            if (stored == 0)
            {
                await session.Command(InsertFinishedRewritten, values, transaction).ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            // The chain head is read once per commit, after a write (SQLite's write lock) and the chain lock are held.
            head ??= await ChainHeadAsync(session, transaction, cancellationToken).ConfigureAwait(false);
            var (link, next) = Link(record, head.Value);
            await session.Command(InsertLink, link, transaction).ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            head = next;
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The same transaction in at most two round trips, for a store across the network: BEGIN (with, when the commit need
    /// not wait for the disk, the setting that says so for this transaction alone), the records, the chain lock and the chain
    /// head (each statement sees what committed before it ran, so the head is read after the lock is held); then whichever
    /// finished records must be rewritten whole, their links and COMMIT. A commit of started records alone is one round trip.
    /// Sent one by one, with the session's setting changed before each, a call's two commits took nine. On failure the
    /// transaction is left open on the connection, which the caller drops: a pooled connection is rolled back before reuse.
    /// </summary>
    private async Task StoreInBatchesAsync(DbConnection connection, IReadOnlyList<PendingWrite> writes, bool flush, CancellationToken cancellationToken)
    {
        var sealing = writes.Any(w => w.Seal);
        await using var first = connection.CreateBatch();
        // Read committed whatever the server's default: the head must be read from a snapshot taken after the lock is held,
        // where a repeatable read transaction would keep the one its first insert took.
        Add(first, "BEGIN ISOLATION LEVEL READ COMMITTED", []);
        if ((flush ? FlushStatement : NoFlushStatement) is { } setting)
        {
            Add(first, setting, []);
        }

        var stored = new List<(PendingWrite Write, object?[] Values, DbBatchCommand Command)>(writes.Count);
        foreach (var write in writes)
        {
            var values = AuditValues(write.Record);
            stored.Add((write, values, Add(first, write.Seal ? InsertFinished : InsertStarted, values)));
        }

        if (!sealing)
        {
            Add(first, "COMMIT", []);
            await first.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        if (ChainLockStatement is { } chainLock)
        {
            Add(first, chainLock, []);
        }

        Add(first, ChainHead, []);
        (long Seq, string Hash)? head = null;
        await using (var reader = await first.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            // The lock's row, then the head's: the head is the last result, with its two columns.
            do
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    head = reader.FieldCount == 2 ? (reader.GetInt64(0), reader.GetString(1)) : head;
                }
            }
            while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
        }

        head ??= await CheckpointStartAsync(connection, null, cancellationToken).ConfigureAwait(false);
        await using var second = connection.CreateBatch();
        foreach (var (write, values, command) in stored.Where(s => s.Write.Seal))
        {
            if (command.RecordsAffected == 0)
            {
                Add(second, InsertFinishedRewritten, values);
            }

            var (link, next) = Link(write.Record, head.Value);
            Add(second, InsertLink, link);
            head = next;
        }

        Add(second, "COMMIT", []);
        await second.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The values of the link that seals a finished record onto the chain after <paramref name="head"/>, and the new head.</summary>
    private static (object?[] Values, (long Seq, string Hash) Head) Link(AuditRecord record, (long Seq, string Hash) head)
    {
        var sealedRecord = AuditChain.Canonical(record);
        var hash = AuditChain.Hash(head.Hash, sealedRecord);
        return ([head.Seq + 1, record.Id, head.Hash, hash, sealedRecord], (head.Seq + 1, hash));
    }

    private static DbBatchCommand Add(DbBatch batch, string sql, IReadOnlyList<object?> values)
    {
        var command = batch.CreateBatchCommand();
        command.CommandText = sql;
        foreach (var value in values)
        {
            var parameter = command.CreateParameter();
            parameter.Value = value ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }

        batch.BatchCommands.Add(command);
        return command;
    }

    private async Task<(long Seq, string Hash)> ChainHeadAsync(StatementSession session, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await LockChainAsync(session.Connection, transaction, cancellationToken).ConfigureAwait(false);
        await using (var reader = await session.Command(ChainHead, [], transaction).ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return (reader.GetInt64(0), reader.GetString(1));
            }
        }

        // After a purge that took every link, the chain goes on from the checkpoint's sequence number.
        return await CheckpointStartAsync(session.Connection, transaction, cancellationToken).ConfigureAwait(false);
    }

    private const string InsertLink = "INSERT INTO audit_chain (seq, record_id, prev, hash, sealed) VALUES ($1, $2, $3, $4, $5)";

    private const string ChainHead = "SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1";
}
