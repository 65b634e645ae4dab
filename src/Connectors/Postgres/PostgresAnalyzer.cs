using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Asks PostgreSQL what a statement touches: <c>EXPLAIN (VERBOSE, FORMAT JSON)</c> in a read-only transaction that is rolled back,
/// all in one round trip. EXPLAIN without ANALYZE plans but never executes, so even a write is only described.
/// </summary>
public sealed class PostgresAnalyzer(PostgresTargets targets) : IStatementAnalyzer
{
    private const string ExplainPrefix = "EXPLAIN (VERBOSE, FORMAT JSON) ";

    private static readonly TimeSpan ExplainTimeout = TimeSpan.FromSeconds(5);

    public async ValueTask<PlanFacts> ExplainAsync(string connection, string sql, IReadOnlyList<string?> parameters, SessionRole? role, CancellationToken cancellationToken)
    {
        await using var pooled = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
        await using var batch = pooled.Connection.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.BeginReadOnly));
        // The same role and search_path as execution, so names resolve to the same relations in both.
        batch.BatchCommands.Add(SessionSettings.ForExplain(ExplainTimeout, targets.Config(connection).SearchPath, role));
        var explain = new NpgsqlBatchCommand(ExplainPrefix + sql);
        SessionSettings.AddParameters(explain, parameters);
        batch.BatchCommands.Add(explain);
        // Planning can run functions (folding immutable ones, estimating with stable ones), and a function can take a lock.
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.ReleaseLocks));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
        try
        {
            string? json = null;
            await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                do
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        if (reader.GetName(0) != SessionSettings.Marker)
                        {
                            json = reader.GetString(0);
                        }
                    }
                }
                while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
            }

            pooled.MarkReset();
            return PlanReader.Read(json ?? throw new InvalidOperationException("EXPLAIN returned no plan."));
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or OperationCanceledException)
        {
            await pooled.RollBackAsync().ConfigureAwait(false);
            if (e is OperationCanceledException)
            {
                throw;
            }

            throw SessionSettings.ProfileFailure(e, role) ?? PostgresErrors.Map(e, positionOffset: ExplainPrefix.Length);
        }
    }
}
