using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Runs one authorized statement in a single round trip. Reads: BEGIN READ ONLY, settings, a cursor fetched to the row cap
/// (so rows past the cap are never computed), ROLLBACK. Writes: BEGIN, settings, the statement; then, once the caller has
/// recorded the outcome, COMMIT.
/// </summary>
public sealed class PostgresExecutor(PostgresTargets targets) : IQueryExecutor
{
    private const string Cursor = "gatehouse_result";
    private const string DeclarePrefix = $"DECLARE {Cursor} NO SCROLL CURSOR FOR ";

    public async ValueTask<QueryResult> ExecuteAsync(ExecutionRequest request, Func<QueryResult, ValueTask>? beforeCommit, CancellationToken cancellationToken)
    {
        await using var connection = await targets.OpenAsync(request.Connection, cancellationToken).ConfigureAwait(false);
        await using var batch = connection.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(request.ReadOnly ? FixedStatements.BeginReadOnly : FixedStatements.Begin));
        batch.BatchCommands.Add(SessionSettings.Create(request.StatementTimeout, targets.Config(request.Connection).SearchPath, request.Role, request.Caller, request.CallId));
        var statement = new NpgsqlBatchCommand(request.Cursor ? DeclarePrefix + request.Sql : request.Sql);
        batch.BatchCommands.Add(statement);
        if (request.Cursor)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"FETCH FORWARD {request.MaxRows + 1} FROM {Cursor}"));
        }

        // Reads and dry runs end in ROLLBACK, so nothing they did (session settings included) outlives the call.
        // A write commits in a second step, after beforeCommit has recorded it.
        var rollBack = request.ReadOnly || request.DryRun;
        if (rollBack)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
        }

        SessionSettings.AddParameters(statement, request.Parameters);
        QueryResult result;
        try
        {
            await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                result = await ResultReader.ReadAsync(reader, request.MaxRows, request.MaxBytes, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (IsDatabaseFailure(e))
        {
            await RollBackQuietlyAsync(connection).ConfigureAwait(false);
            throw SessionSettings.ProfileFailure(e, request.Role) ?? PostgresErrors.Map(e, positionOffset: request.Cursor ? DeclarePrefix.Length : 0);
        }

        if (request.ReadOnly)
        {
            return result;
        }

        result = result with { AffectedRows = statement.RecordsAffected };
        if (request.DryRun)
        {
            return result;
        }

        await CommitAfterAsync(connection, result, beforeCommit, cancellationToken).ConfigureAwait(false);
        return result;
    }

    private static bool IsDatabaseFailure(Exception e) => e is NpgsqlException or TimeoutException or IOException or InvalidOperationException;

    // The caller's step runs inside the open transaction; whatever it throws rolls the write back and reaches the caller as is.
    private static async ValueTask CommitAfterAsync(NpgsqlConnection connection, QueryResult result, Func<QueryResult, ValueTask>? beforeCommit, CancellationToken cancellationToken)
    {
        if (beforeCommit is not null)
        {
            try
            {
                await beforeCommit(result).ConfigureAwait(false);
            }
            catch
            {
                await RollBackQuietlyAsync(connection).ConfigureAwait(false);
                throw;
            }
        }

        try
        {
            await using var commit = new NpgsqlCommand(FixedStatements.Commit, connection);
            await commit.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (IsDatabaseFailure(e))
        {
            await RollBackQuietlyAsync(connection).ConfigureAwait(false);
            throw PostgresErrors.Map(e);
        }
    }

    // The batch stops at the first error, so the transaction may still be open; never hand it back to the pool like that.
    internal static async ValueTask RollBackQuietlyAsync(NpgsqlConnection connection)
    {
        if (connection.FullState != System.Data.ConnectionState.Open)
        {
            return;
        }

        try
        {
            await using var rollback = new NpgsqlCommand(FixedStatements.Rollback, connection);
            await rollback.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (NpgsqlException)
        {
            // A broken connection is discarded by the pool; there is nothing left to roll back.
        }
    }
}
