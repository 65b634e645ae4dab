using System.Data.Common;

namespace Gatehouse.Connectors.State;

/// <summary>
/// The gateway's whole state over plain ADO.NET, written once for SQLite and PostgreSQL: the audit log
/// (<see cref="SqlAuditLog"/>), access requests and grants, statement approvals and agent switches. SQL uses <c>$1..$n</c>
/// parameters and the subset both databases share; a store supplies connections, binding and row locking.
/// </summary>
public abstract partial class SqlStateStore : SqlAuditLog
{
    /// <summary>
    /// Appended to a SELECT that reads a row it will then update in the same transaction. SQLite needs nothing (its write
    /// transactions are serialized when they begin); PostgreSQL locks the row.
    /// </summary>
    protected virtual string LockRow => "";

    /// <summary>
    /// Taken in a write transaction that counts an agent's pending requests before filing one ($1: the agent), so two filings
    /// at once are counted one after the other. SQLite needs nothing (its write transactions are serialized when they begin).
    /// </summary>
    protected virtual string? AgentLockStatement => null;

    /// <summary>
    /// Files a request (<paramref name="insert"/>) unless <paramref name="same"/> finds the same request already filed, or
    /// <paramref name="countPending"/> finds <paramref name="maxPending"/> of its agent's already waiting, in one transaction
    /// under the agent's lock; returns how many were waiting, or the request found.
    /// </summary>
    private async Task<(int Pending, T? Same)> FileUnlessAtCapAsync<T>(
        string agent,
        int maxPending,
        (string Sql, IReadOnlyList<object?> Values, Func<DbDataReader, T> Read)? same,
        (string Sql, IReadOnlyList<object?> Values) countPending,
        (string Sql, IReadOnlyList<object?> Values) insert,
        CancellationToken cancellationToken)
        where T : class =>
        await InTransactionAsync<(int, T?)>(
            async (connection, transaction) =>
            {
                if (AgentLockStatement is { } agentLock)
                {
                    await NonQueryAsync(connection, transaction, agentLock, [agent], cancellationToken).ConfigureAwait(false);
                }

                if (same is { } find && (await RowsAsync(connection, transaction, find.Sql, find.Values, find.Read, cancellationToken).ConfigureAwait(false)).FirstOrDefault() is { } found)
                {
                    return (0, found);
                }

                var pending = (int)(await RowsAsync(connection, transaction, countPending.Sql, countPending.Values, r => r.GetInt64(0), cancellationToken).ConfigureAwait(false))[0];
                if (pending < maxPending)
                {
                    await NonQueryAsync(connection, transaction, insert.Sql, insert.Values, cancellationToken).ConfigureAwait(false);
                }

                return (pending, null);
            },
            cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Throws unless the store answers (a connection and a read of the audit table) and can still make records durable (for
    /// readiness checks: after a failed flush no call can finish, so the instance should get no more).
    /// </summary>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        if (FlushFailure is { } failed)
        {
            throw new IOException(failed.Message, failed.InnerException);
        }

        await AuditQueryAsync("SELECT 1 FROM audit LIMIT 1", [], _ => 0, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Called after every state write of this handle, committed or not (agent switches, requests, approvals, rotations; not the
    /// audit log), so a store that keeps what calls read can drop it.
    /// </summary>
    protected virtual void StateWritten()
    {
    }

    private async Task<int> ExecuteStateAsync(string sql, IReadOnlyList<object?> values, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await OpenAuditConnectionAsync(cancellationToken).ConfigureAwait(false);
            return await NonQueryAsync(connection, null, sql, values, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            StateWritten();
        }
    }

    /// <summary>Runs <paramref name="work"/> in one write transaction and commits it.</summary>
    private async Task<T> InTransactionAsync<T>(Func<DbConnection, DbTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await OpenAuditConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var transaction = await connection.BeginTransactionAsync(StateIsolation, cancellationToken).ConfigureAwait(false);
            var result = await work(connection, transaction).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return result;
        }
        finally
        {
            StateWritten();
        }
    }

    private static long? Long(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);
}
