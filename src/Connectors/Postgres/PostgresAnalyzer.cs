using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Asks PostgreSQL what a statement touches: <c>EXPLAIN (VERBOSE, FORMAT JSON)</c> in a read-only transaction that is rolled back,
/// all in one round trip. EXPLAIN without ANALYZE plans but never executes, so even a write is only described. Before it, what
/// the statement calls: its rewritten parse tree, which <c>PREPARE</c> prints without planning.
/// </summary>
public sealed class PostgresAnalyzer(PostgresTargets targets) : IStatementAnalyzer
{
    private const string ExplainPrefix = "EXPLAIN (VERBOSE, FORMAT JSON) ";

    // PREPARE parses, analyzes and rewrites (expanding views, rules, defaults and row security) but does not plan.
    private const string ProbePrefix = "PREPARE gatehouse_probe AS ";

    // For this transaction only: print each rewritten parse tree, and send it to this client (not to the server log, whose
    // log_min_messages is WARNING unless a DBA lowered it).
    private const string PrintTrees = "SELECT set_config('debug_print_rewritten', 'on', true), set_config('client_min_messages', 'log', true)";

    private const string TreeMessage = "rewritten parse tree:";

    private static readonly TimeSpan ExplainTimeout = TimeSpan.FromSeconds(5);

    public async ValueTask<StatementReferences> ResolveAsync(string connection, string sql, SessionRole? role, CancellationToken cancellationToken)
    {
        await using var probe = await targets.OpenProbeAsync(connection, cancellationToken).ConfigureAwait(false);
        var trees = new List<string>();
        probe.Notice += (_, e) =>
        {
            if (e.Notice.MessageText == TreeMessage && e.Notice.Detail is { } tree)
            {
                trees.Add(tree);
            }
        };

        await using var batch = probe.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.BeginReadOnly));
        batch.BatchCommands.Add(SessionSettings.ForExplain(ExplainTimeout, targets.Config(connection).SearchPath, role));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(PrintTrees));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(ProbePrefix + sql));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DEALLOCATE gatehouse_probe"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
        try
        {
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
        {
            // The connection goes back to its pool, which rolls the failed transaction back.
            throw SessionSettings.ProfileFailure(e, role) ?? PostgresErrors.Map(e, positionOffset: ProbePrefix.Length);
        }

        // Besides the statement's own, the trees of the utility commands around it, which name nothing.
        return trees.Count > 0
            ? ParseTreeReader.Read(trees)
            : throw new DatabaseException(DatabaseFailure.Rejected, "PostgreSQL sent no parse tree for the statement, so the functions it calls cannot be checked and it is refused; the gateway sets debug_print_rewritten and client_min_messages for its own transaction, which every role may do, so something between it and the server drops LOG messages");
    }

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
