using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Runs one authorized statement in a single round trip. Reads: BEGIN READ ONLY, settings, a cursor fetched to the row cap
/// (so rows past the cap are never computed), ROLLBACK. Writes: BEGIN, settings, the statement, COMMIT.
/// </summary>
public sealed class PostgresExecutor(PostgresTargets targets) : IQueryExecutor
{
    private const string Cursor = "gatehouse_result";
    private const string DeclarePrefix = $"DECLARE {Cursor} NO SCROLL CURSOR FOR ";

    public async ValueTask<QueryResult> ExecuteAsync(ExecutionRequest request, CancellationToken cancellationToken)
    {
        await using var connection = await targets.OpenAsync(request.Connection, cancellationToken).ConfigureAwait(false);
        await using var batch = connection.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(request.ReadOnly ? "BEGIN READ ONLY" : "BEGIN"));
        batch.BatchCommands.Add(SessionSettings.Create(request.StatementTimeout, targets.Config(request.Connection).SearchPath, request.Caller, request.CallId));
        var statement = new NpgsqlBatchCommand(request.Cursor ? DeclarePrefix + request.Sql : request.Sql);
        batch.BatchCommands.Add(statement);
        if (request.Cursor)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"FETCH FORWARD {request.MaxRows + 1} FROM {Cursor}"));
        }

        // Reads end in ROLLBACK, so nothing they did (session settings included) outlives the call.
        batch.BatchCommands.Add(new NpgsqlBatchCommand(request.ReadOnly ? "ROLLBACK" : "COMMIT"));

        SessionSettings.AddParameters(statement, request.Parameters);
        try
        {
            QueryResult result;
            await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                result = await ResultReader.ReadAsync(reader, request.MaxRows, request.MaxBytes, cancellationToken).ConfigureAwait(false);
            }

            return request.ReadOnly ? result : result with { AffectedRows = statement.RecordsAffected };
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException)
        {
            await RollBackQuietlyAsync(connection).ConfigureAwait(false);
            throw PostgresErrors.Map(e, positionOffset: request.Cursor ? DeclarePrefix.Length : 0);
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
            await using var rollback = new NpgsqlCommand("ROLLBACK", connection);
            await rollback.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (NpgsqlException)
        {
            // A broken connection is discarded by the pool; there is nothing left to roll back.
        }
    }
}
