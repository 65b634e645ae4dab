using System.Data;
using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Runs one authorized statement in a single round trip. Reads: BEGIN READ ONLY, settings, a cursor fetched to the row cap
/// (so rows past the cap are never computed), the release of any advisory lock, ROLLBACK. Writes: BEGIN, settings, the
/// statement; then, once the caller has recorded the outcome, COMMIT and the session reset (<see cref="PooledConnection"/>).
/// </summary>
public sealed class PostgresExecutor(PostgresTargets targets) : IQueryExecutor
{
    private const string DeclarePrefix = $"DECLARE {FixedStatements.ResultCursor} NO SCROLL CURSOR FOR ";

    public async ValueTask<QueryResult> ExecuteAsync(ExecutionRequest request, Func<QueryResult, ValueTask>? beforeCommit, CancellationToken cancellationToken)
    {
        await using var pooled = await targets.OpenAsync(request.Connection, cancellationToken).ConfigureAwait(false);
        await using var batch = pooled.Connection.CreateBatch();
        batch.Timeout = ClientTimeout(request.StatementTimeout);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(request.ReadOnly ? FixedStatements.BeginReadOnly : FixedStatements.Begin));
        batch.BatchCommands.Add(SessionSettings.Create(request.StatementTimeout, targets.Config(request.Connection).SearchPath, request.Role, request.Caller, request.CallId));
        // A write is counted before and after: the rows its transaction changed in all, cascades and triggers included.
        if (!request.ReadOnly)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.RowsTouched));
        }

        var statement = new NpgsqlBatchCommand(request.Cursor ? DeclarePrefix + request.Sql : request.Sql);
        batch.BatchCommands.Add(statement);
        var rowsFrom = statement;
        if (request.Cursor)
        {
            rowsFrom = new NpgsqlBatchCommand($"FETCH FORWARD {request.MaxRows + 1} FROM {FixedStatements.ResultCursor}");
            batch.BatchCommands.Add(rowsFrom);
        }

        if (!request.ReadOnly)
        {
            // Deferred triggers and constraint checks run now rather than at COMMIT, which is after the count and the record.
            batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.ConstraintsNow));
            batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.RowsTouched));
        }

        // Reads and dry runs end in ROLLBACK, so nothing transactional they did (session settings included) outlives the call.
        // What would is undone in the same round trip: a read's advisory locks, released inside its transaction (which costs
        // PostgreSQL less than a transaction of their own after it) once its cursor is closed, and after a dry run, which may
        // have drawn from a sequence, the full reset. A write commits in a second step, after beforeCommit has recorded it.
        if (request.ReadOnly)
        {
            if (request.Cursor)
            {
                batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.CloseResult));
            }

            batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.ReleaseLocks));
            batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
        }
        else if (request.DryRun)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
            FixedStatements.AddReset(batch);
        }

        SessionSettings.AddParameters(statement, request.Parameters);
        QueryResult result;
        try
        {
            // Sequential: a row is not buffered whole, so a value past the byte cap is skipped on the wire, never held.
            await using (var reader = await batch.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken).ConfigureAwait(false))
            {
                result = await ResultReader.ReadAsync(reader, rowsFrom, request, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            // The batch stops at the first error, and a write's batch has no ROLLBACK of its own, so whatever ended the call here
            // (a cancellation, or a failure of the gateway's own) may leave the transaction open: roll it back before the
            // connection is lent again, never commit it with the next call.
            await pooled.RollBackAsync().ConfigureAwait(false);
            if (!IsDatabaseFailure(e))
            {
                throw;
            }

            throw SessionSettings.ProfileFailure(e, request.Role) ?? PostgresErrors.Map(e, positionOffset: request.Cursor ? DeclarePrefix.Length : 0);
        }

        if (!request.ReadOnly)
        {
            // -1 where PostgreSQL reports no count (a SELECT, EXPLAIN): unknown, never a negative number of rows.
            result = result with { AffectedRows = statement.RecordsAffected >= 0 ? statement.RecordsAffected : null };
        }

        if (request.ReadOnly || request.DryRun)
        {
            pooled.MarkReset();
            return result;
        }

        await CommitAfterAsync(pooled, result, beforeCommit, ClientTimeout(request.StatementTimeout)).ConfigureAwait(false);
        return result;
    }

    // PostgreSQL's statement_timeout ends a statement that runs too long, with an error that says so. The client's own wait
    // (Npgsql's command timeout, 30 s unless the connection string says otherwise) is set past it, so it only ever ends a
    // wait for a server that no longer answers, never a statement the policy gives longer.
    private static int ClientTimeout(TimeSpan statementTimeout) => (int)Math.Ceiling(statementTimeout.TotalSeconds) + 30;

    private static bool IsDatabaseFailure(Exception e) => e is NpgsqlException or TimeoutException or IOException or InvalidOperationException;

    // The caller's step runs inside the open transaction; whatever it throws rolls the write back and reaches the caller as is.
    private static async ValueTask CommitAfterAsync(PooledConnection pooled, QueryResult result, Func<QueryResult, ValueTask>? beforeCommit, int timeout)
    {
        if (beforeCommit is not null)
        {
            try
            {
                await beforeCommit(result).ConfigureAwait(false);
            }
            catch
            {
                await pooled.RollBackAsync().ConfigureAwait(false);
                throw;
            }
        }

        // Not cancellable: once the record says the write happened, an abandoned COMMIT would leave that in doubt.
        await using var commit = pooled.Connection.CreateBatch();
        commit.Timeout = timeout;
        commit.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Commit));
        FixedStatements.AddReset(commit);
        try
        {
            await commit.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            pooled.MarkReset();
        }
        catch (PostgresException e) when (e.BatchCommand is { } failed && !ReferenceEquals(failed, commit.BatchCommands[0]))
        {
            // The write committed; only the reset after it failed. The call succeeded, and the connection is not lent again.
            pooled.Discard();
        }
        catch (PostgresException e)
        {
            // PostgreSQL answered: the commit failed (a deferred constraint, a serialization failure) and nothing was applied.
            await pooled.RollBackAsync().ConfigureAwait(false);
            throw PostgresErrors.Map(e);
        }
        catch (Exception e) when (IsDatabaseFailure(e))
        {
            // No answer: the server may have committed before the connection broke, or not. Saying "nothing was run" could
            // make an agent apply the write twice.
            await pooled.RollBackAsync().ConfigureAwait(false);
            throw new DatabaseException(DatabaseFailure.CommitInDoubt, $"the connection broke while the write was committing ({e.Message})", inner: e);
        }
    }
}
