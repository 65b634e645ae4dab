using System.Data;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// Asks PostgreSQL what a statement touches: <c>EXPLAIN (VERBOSE, FORMAT JSON)</c> in a read-only transaction that is rolled back,
/// all in one round trip. EXPLAIN without ANALYZE plans but never executes, so even a write is only described. Before it, what
/// the statement calls: its parse tree, which <c>PREPARE</c> prints without planning.
/// </summary>
public sealed class PostgresAnalyzer(PostgresTargets targets) : IStatementAnalyzer
{
    private const string ExplainPrefix = "EXPLAIN (VERBOSE, FORMAT JSON) ";

    // PREPARE parses and analyzes (and rewrites, which expands views) but does not plan.
    private const string ProbePrefix = "PREPARE gatehouse_probe AS ";

    // For this transaction only: print each statement's parse tree as analysis leaves it (before views are expanded, so its
    // size follows the statement's), on lines that are only ever broken at a space, and send it to this client.
    private const string PrintTrees =
        "SELECT set_config('debug_print_parse', 'on', true), set_config('debug_pretty_print', 'off', true), set_config('client_min_messages', 'log', true),"
        + " set_config('debug_print_rewritten', 'off', true), set_config('debug_print_plan', 'off', true)";

    // The tree is a LOG message, which the server log ranks above ERROR: at the default log_min_messages (WARNING) every
    // probe would write the statement's tree, its literal values included, to the server log. Set first, so before any tree.
    private const string QuietServerLog = "SELECT set_config('log_min_messages', 'fatal', true)";

    /// <summary>A parse tree longer than this is not read: the statement is refused as one the gateway cannot check.</summary>
    public const int MaxTreeLength = 16 * 1024 * 1024;

    /// <summary>Plans (EXPLAIN's JSON) longer than this are refused unread.</summary>
    public const int MaxPlanLength = 16 * 1024 * 1024;

    private const string TreeMessage = "parse tree:";

    private static readonly TimeSpan ExplainTimeout = TimeSpan.FromSeconds(5);

    // The tables each named relation is a partition or an inheritance child of, nearest first (pg_inherits, walked up).
    private const string Ancestors =
        "WITH RECURSIVE named AS ("
        + " SELECT c.oid, n.nspname, c.relname, c.relispartition FROM unnest($1::text[], $2::text[]) AS r(schema, name)"
        + " JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = r.name),"
        + " up(child, parent, depth) AS (SELECT i.inhrelid, i.inhparent, 1 FROM pg_catalog.pg_inherits i JOIN named ON i.inhrelid = named.oid"
        + " UNION SELECT up.child, i.inhparent, up.depth + 1 FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.parent WHERE up.depth < 100)"
        + " SELECT named.nspname, named.relname, named.relispartition, pn.nspname, p.relname FROM up JOIN named ON named.oid = up.child"
        + " JOIN pg_catalog.pg_class p ON p.oid = up.parent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace"
        + " ORDER BY 1, 2, up.depth, 4, 5";

    // Every partition and inheritance child below the named tables, at any depth.
    private const string Descendants =
        "WITH RECURSIVE named AS ("
        + " SELECT c.oid FROM unnest($1::text[], $2::text[]) AS r(schema, name)"
        + " JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = r.name),"
        + " down(child, depth) AS (SELECT i.inhrelid, 1 FROM pg_catalog.pg_inherits i JOIN named ON i.inhparent = named.oid"
        + " UNION SELECT i.inhrelid, down.depth + 1 FROM down JOIN pg_catalog.pg_inherits i ON i.inhparent = down.child WHERE down.depth < 100)"
        + " SELECT DISTINCT n.nspname, c.relname FROM down JOIN pg_catalog.pg_class c ON c.oid = down.child"
        + " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'f') ORDER BY 1, 2";

    public async ValueTask<StatementReferences> ResolveAsync(string connection, string sql, SessionRole? role, CancellationToken cancellationToken)
    {
        await using var probe = await targets.OpenProbeAsync(connection, cancellationToken).ConfigureAwait(false);
        var trees = new List<string>();
        var tooLarge = false;
        probe.Notice += (_, e) =>
        {
            if (e.Notice.MessageText == TreeMessage && e.Notice.Detail is { } tree)
            {
                tooLarge |= tree.Length > MaxTreeLength;
                if (!tooLarge)
                {
                    trees.Add(tree);
                }
            }
        };

        await using var batch = probe.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.BeginReadOnly));
        // Quieted as the login role, before the settings take on the caller's role, which may not set it.
        var config = targets.Config(connection);
        var quiet = new NpgsqlBatchCommand(QuietServerLog);
        // Before 15 nobody but a superuser may set it, and no tree is printed for PREPARE anyway: the statement is refused
        // below for the server's version.
        if (!config.LogParseTrees && probe.PostgreSqlVersion.Major >= 15)
        {
            batch.BatchCommands.Add(quiet);
        }

        batch.BatchCommands.Add(SessionSettings.ForExplain(ExplainTimeout, config.SearchPath, role));

        batch.BatchCommands.Add(new NpgsqlBatchCommand(PrintTrees));
        var prepare = new NpgsqlBatchCommand(ProbePrefix + sql);
        batch.BatchCommands.Add(prepare);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DEALLOCATE gatehouse_probe"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
        try
        {
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or OperationCanceledException)
        {
            // The connection goes back to its pool, which rolls the failed transaction back. Unless PREPARE itself failed (or
            // something before it), the statement may be left prepared on it, where the next probe's PREPARE would fail; and
            // if PREPARE failed for that (42P05), one was. Then the probe pool is cleared, which closes the connection.
            if (e is not PostgresException { BatchCommand: { } failed } pg || batch.BatchCommands.IndexOf(failed) > batch.BatchCommands.IndexOf(prepare)
                || pg.SqlState == PostgresErrorCodes.DuplicatePreparedStatement)
            {
                targets.ClearProbes(connection);
            }

            if (e is OperationCanceledException)
            {
                throw;
            }

            if (e is PostgresException { SqlState: PostgresErrorCodes.InsufficientPrivilege } denied && denied.BatchCommand == quiet)
            {
                throw new DatabaseException(
                    DatabaseFailure.Rejected,
                    $"the gateway's login role may not set log_min_messages on connection '{connection}', which keeps PostgreSQL from writing each statement's parse tree, literal values included, to its server log, so no statement is checked or run there;"
                    + " an admin grants it with `gatehouse setup` or GRANT SET ON PARAMETER log_min_messages TO the login role (or sets log_parse_trees: true on the connection to accept those log lines)",
                    denied.SqlState,
                    denied);
            }

            throw SessionSettings.ProfileFailure(e, role) ?? PostgresErrors.Map(e, positionOffset: ProbePrefix.Length);
        }

        // Besides the statement's own tree, those of the commands around it; a server that prints no tree for the statement
        // (PostgreSQL 14 and earlier do not for PREPARE) cannot say what it calls.
        if (tooLarge)
        {
            throw new DatabaseException(DatabaseFailure.Rejected, $"the statement's parse tree is longer than {MaxTreeLength / (1024 * 1024)} MB, too large for the gateway to check what it calls, so it is refused; name fewer or narrower relations");
        }

        var references = ParseTreeReader.Read(trees);
        return references.Statement
            ? references
            : throw new DatabaseException(DatabaseFailure.Rejected, "PostgreSQL sent no parse tree for the statement, so the functions it calls cannot be checked and it is refused; Gatehouse needs PostgreSQL 15 or later, and nothing between it and the server that drops LOG messages");
    }

    public async ValueTask<PlanFacts> ExplainAsync(string connection, string sql, IReadOnlyList<string?> parameters, SessionRole? role, CancellationToken cancellationToken)
    {
        await using var pooled = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
        try
        {
            // Pruning by constants and bound values is decided in planning, the same for the run (the values are in the cache
            // key). Pruning by stable expressions happens as the plan starts, EXPLAIN's too, and can differ for the run (which
            // sets gatehouse.agent): when it left partitions out, the statement is planned again without pruning, so every
            // partition it could read is in the plan.
            var json = await ExplainOnceAsync(pooled, connection, sql, parameters, role, pruning: true, cancellationToken).ConfigureAwait(false);
            if (PlanReader.LeftPartitionsOut(json))
            {
                json = await ExplainOnceAsync(pooled, connection, sql, parameters, role, pruning: false, cancellationToken).ConfigureAwait(false);
            }

            var plan = PlanReader.Read(json);
            plan = plan with { Lineage = await LineageAsync(pooled.Connection, plan, cancellationToken).ConfigureAwait(false) };
            if (plan.UnprintedTargetReads.Count > 0)
            {
                // An upsert into a partitioned table routes each row as it runs, so its plan names no partition: what its SET
                // list may read of the target row is in whichever partition holds it, and a partition may carry tags of its own.
                plan = plan with { UnprintedTargetReads = [.. plan.UnprintedTargetReads, .. await DescendantsAsync(pooled.Connection, plan.UnprintedTargetReads, cancellationToken).ConfigureAwait(false)] };
            }

            pooled.MarkReset();
            return plan;
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
        catch (FormatException e)
        {
            // Its plan cannot be read, so what it touches is not known: refused, saying why, not an internal error.
            pooled.MarkReset();
            throw new DatabaseException(DatabaseFailure.Rejected, $"{e.Message}, so what it touches cannot be checked and it is refused; split it into simpler statements");
        }
    }

    private async Task<string> ExplainOnceAsync(
        PooledConnection pooled, string connection, string sql, IReadOnlyList<string?> parameters, SessionRole? role, bool pruning, CancellationToken cancellationToken)
    {
        await using var batch = pooled.Connection.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.BeginReadOnly));
        // The same role and search_path as execution, so names resolve to the same relations in both.
        batch.BatchCommands.Add(SessionSettings.ForExplain(ExplainTimeout, targets.Config(connection).SearchPath, role, pruning));
        var explain = new NpgsqlBatchCommand(ExplainPrefix + sql);
        SessionSettings.AddParameters(explain, parameters);
        batch.BatchCommands.Add(explain);
        // Planning can run functions (folding immutable ones, estimating with stable ones), and a function can take a lock.
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.ReleaseLocks));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(FixedStatements.Rollback));
        string? json = null;
        long tooLong = 0;
        await using (var reader = await batch.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken).ConfigureAwait(false))
        {
            do
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (reader.GetName(0) == SessionSettings.Marker)
                    {
                        continue;
                    }

                    // A constant the planner folded is in the plan whole (select repeat('x', 3e8)): measured before it is read.
                    var length = reader.GetBytes(0, 0, null, 0, 0);
                    if (length > MaxPlanLength)
                    {
                        tooLong = length;
                        continue;
                    }

                    json = reader.GetString(0);
                }
            }
            while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
        }

        if (tooLong > 0)
        {
            throw new DatabaseException(DatabaseFailure.Rejected, $"the statement's plan is {tooLong / (1024 * 1024)} MB, more than the {MaxPlanLength / (1024 * 1024)} MB the gateway reads to check it, so it is refused; a plan this large holds a huge constant or names very many relations");
        }

        return json ?? throw new InvalidOperationException("EXPLAIN returned no plan.");
    }

    private static async Task<List<RelationName>> DescendantsAsync(NpgsqlConnection connection, IReadOnlyList<RelationName> tables, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(Descendants, connection);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = tables.Select(r => r.Schema).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = tables.Select(r => r.Name).ToArray() });
        var descendants = new List<RelationName>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var child = new RelationName(reader.GetString(0), reader.GetString(1));
            if (!tables.Contains(child))
            {
                descendants.Add(child);
            }
        }

        return descendants;
    }

    // A plan names the partitions it scans, never their partitioned table; tags, grants and guardrails name the table.
    private static async Task<IReadOnlyDictionary<RelationName, RelationLineage>> LineageAsync(NpgsqlConnection connection, PlanFacts plan, CancellationToken cancellationToken)
    {
        var relations = plan.Relations.Select(r => r.Relation).Distinct().ToList();
        if (relations.Count == 0)
        {
            return new Dictionary<RelationName, RelationLineage>();
        }

        await using var command = new NpgsqlCommand(Ancestors, connection);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = relations.Select(r => r.Schema).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = relations.Select(r => r.Name).ToArray() });
        var rows = new List<(RelationName Child, bool Partition, RelationName Parent)>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows.Add((new RelationName(reader.GetString(0), reader.GetString(1)), reader.GetBoolean(2), new RelationName(reader.GetString(3), reader.GetString(4))));
            }
        }

        // Rows come nearest ancestor first; one reached by two paths (multiple inheritance) counts once.
        return rows.GroupBy(r => r.Child).ToDictionary(g => g.Key, g => new RelationLineage(g.Select(r => r.Parent).Distinct().ToList(), g.First().Partition));
    }
}
