using System.Collections.Concurrent;
using System.Data.Common;

namespace Gatehouse.Connectors.State;

/// <summary>
/// Reads outside a transaction. Every call reads the store on its way in (is the caller disabled, which time-boxed grants
/// does it hold), so a revocation or an approval counts from the next call; where <see cref="KeepsReaders"/>, those reads
/// keep their connection and statements for the next read instead of opening and compiling them again.
/// </summary>
public abstract partial class SqlAuditLog
{
    /// <summary>Idle reader sessions kept for the next reads; beyond this many, a returned session is closed.</summary>
    internal const int MaxIdleReaders = 8;

    private readonly ConcurrentBag<StatementSession> _idleReaders = [];
    private int _idleCount;

    /// <summary>
    /// Whether reads reuse kept sessions. SQLite compiles each new command's statement, and every open of a pooled connection
    /// runs its pragmas; a kept session pays both once. A read still sees every commit before it, by any process: each
    /// statement starts its own read transaction.
    /// </summary>
    protected virtual bool KeepsReaders => false;

    protected async Task<List<T>> AuditQueryAsync<T>(string sql, IReadOnlyList<object?> values, Func<DbDataReader, T> map, CancellationToken cancellationToken)
    {
        if (!KeepsReaders)
        {
            await using var connection = await OpenAuditConnectionAsync(cancellationToken).ConfigureAwait(false);
            return await RowsAsync(connection, null, sql, values, map, cancellationToken).ConfigureAwait(false);
        }

        var session = TakeIdleReader() ?? new StatementSession(await OpenAuditConnectionAsync(cancellationToken).ConfigureAwait(false), Bind);
        List<T> rows;
        try
        {
            rows = await ReadRowsAsync(session.Command(sql, values, null), map, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Whatever failed (the file, a cancelled read, a value that cannot be read) the next read starts afresh.
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        if (Interlocked.Increment(ref _idleCount) <= MaxIdleReaders)
        {
            _idleReaders.Add(session);
        }
        else
        {
            Interlocked.Decrement(ref _idleCount);
            await session.DisposeAsync().ConfigureAwait(false);
        }

        return rows;
    }

    private StatementSession? TakeIdleReader()
    {
        if (!_idleReaders.TryTake(out var session))
        {
            return null;
        }

        Interlocked.Decrement(ref _idleCount);
        return session;
    }

    /// <summary>Closes the writer's connection and the idle readers', for a store being disposed once nothing uses it any more.</summary>
    protected async ValueTask CloseSessionsAsync()
    {
        if (Interlocked.Exchange(ref _session, null) is { } writer)
        {
            RetireLog(writer);
            await writer.DisposeAsync().ConfigureAwait(false);
        }

        while (TakeIdleReader() is { } reader)
        {
            await reader.DisposeAsync().ConfigureAwait(false);
        }
    }
}
