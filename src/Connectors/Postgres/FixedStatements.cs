using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// The gateway's own statements around every call (the transaction's start and end, the settings row, the reset before a
/// connection goes back to the pool), prepared once on each physical connection: a call's round trip then skips parsing and
/// planning them. An agent's SQL is never prepared. A prepared statement outlives the call on the pooled connection, where
/// the next agent's statement could read its text back (<c>pg_prepared_statements</c>), literals and all.
/// </summary>
internal static class FixedStatements
{
    public const string BeginReadOnly = "BEGIN READ ONLY";
    public const string Begin = "BEGIN";
    public const string Rollback = "ROLLBACK";
    public const string Commit = "COMMIT";

    /// <summary>The cursor a read's rows are fetched through.</summary>
    public const string ResultCursor = "gatehouse_result";

    /// <summary>Closes the read's cursor, so the statement's executor has finished before the locks are released.</summary>
    public const string CloseResult = "CLOSE " + ResultCursor;

    /// <summary>
    /// Releases the session-level advisory locks, the one thing a read-only transaction leaves behind when it rolls back
    /// (a function or the planner can take one); it works inside the transaction too. Its row carries the settings row's
    /// name, so readers skip it.
    /// </summary>
    public const string ReleaseLocks = $"SELECT pg_advisory_unlock_all() AS {SessionSettings.Marker}";

    /// <summary>Fires a write's deferred triggers and constraint checks where its rows are counted, not at COMMIT after them.</summary>
    public const string ConstraintsNow = "SET CONSTRAINTS ALL IMMEDIATE";

    /// <summary>
    /// Before and after a write, in its transaction: the rows inserted, updated and deleted in tables (not TOAST), triggers'
    /// and foreign-key cascades' too, as the session's statistics count them (0 with track_counts off). The count also holds earlier
    /// transactions' not yet reported, so only the difference is the write's. Then, as JSON, each table with rows counted:
    /// [schema, name, inserted, updated, deleted, is a partition, [[schema, name] of each table it descends from, nearest
    /// first]], so guardrails on a table see the rows a cascade or trigger wrote there, which the plan does not show. Last, as
    /// JSON, [schema, name] of each table above a partition whose rows are not counted so (a foreign table, a table of another
    /// access method than heap), walked up from those through pg_inherits, which locks nothing. Qualified throughout,
    /// operators included: it runs under the caller's search_path.
    /// </summary>
    public const string RowsTouched =
        "SELECT coalesce(pg_catalog.sum(t.n), 0)::pg_catalog.int8, pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(t.nspname, t.relname, t.i, t.u, t.d, t.relispartition,"
        + " (WITH RECURSIVE up(rel, depth) AS (SELECT h.inhparent, 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid OPERATOR(pg_catalog.=) t.oid"
        + "   UNION ALL SELECT h.inhparent, up.depth OPERATOR(pg_catalog.+) 1 FROM up JOIN pg_catalog.pg_inherits h ON h.inhrelid OPERATOR(pg_catalog.=) up.rel"
        + "   WHERE up.depth OPERATOR(pg_catalog.<) 100)"
        + "  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(an.nspname, ac.relname) ORDER BY up.depth), '[]'::pg_catalog.jsonb)"
        + "  FROM up JOIN pg_catalog.pg_class ac ON ac.oid OPERATOR(pg_catalog.=) up.rel JOIN pg_catalog.pg_namespace an ON an.oid OPERATOR(pg_catalog.=) ac.relnamespace)))"
        + " FILTER (WHERE t.n OPERATOR(pg_catalog.>) 0),"
        + " (WITH RECURSIVE up(rel, depth) AS (SELECT h.inhparent, 1 FROM pg_catalog.pg_class x JOIN pg_catalog.pg_inherits h ON h.inhrelid OPERATOR(pg_catalog.=) x.oid"
        + "   WHERE x.relispartition AND (x.relkind OPERATOR(pg_catalog.=) 'f' OR (x.relkind OPERATOR(pg_catalog.=) 'r'"
        + "   AND x.relam OPERATOR(pg_catalog.<>) (SELECT a.oid FROM pg_catalog.pg_am a WHERE a.amname OPERATOR(pg_catalog.=) 'heap')))"
        + "   UNION ALL SELECT h.inhparent, up.depth OPERATOR(pg_catalog.+) 1 FROM up JOIN pg_catalog.pg_inherits h ON h.inhrelid OPERATOR(pg_catalog.=) up.rel"
        + "   WHERE up.depth OPERATOR(pg_catalog.<) 100)"
        + "  SELECT coalesce(pg_catalog.jsonb_agg(DISTINCT pg_catalog.jsonb_build_array(un.nspname, uc.relname)), '[]'::pg_catalog.jsonb)"
        + "  FROM up JOIN pg_catalog.pg_class uc ON uc.oid OPERATOR(pg_catalog.=) up.rel JOIN pg_catalog.pg_namespace un ON un.oid OPERATOR(pg_catalog.=) uc.relnamespace)"
        + " FROM (SELECT c.oid, n.nspname, c.relname, c.relispartition, s.i, s.u, s.d, s.i OPERATOR(pg_catalog.+) s.u OPERATOR(pg_catalog.+) s.d AS n"
        + "   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace,"
        + "   LATERAL (SELECT pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid) AS i, pg_catalog.pg_stat_get_xact_tuples_updated(c.oid) AS u,"
        + "     pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid) AS d) s"
        + "   WHERE c.relkind OPERATOR(pg_catalog.=) 'r') t";

    /// <summary>
    /// Everything a session can carry from one piece of work to the next, undone: what Npgsql sends on return to the pool
    /// when it keeps prepared statements (<c>DISCARD ALL</c> would drop them), run here by <see cref="PooledConnection"/>.
    /// </summary>
    public static readonly string[] Reset =
        ["SET SESSION AUTHORIZATION DEFAULT", "RESET ALL", "CLOSE ALL", "UNLISTEN *", ReleaseLocks, "DISCARD SEQUENCES", "DISCARD TEMP"];

    // Each with its parameter count (all text): a call's statement matches a prepared one by its text and parameter types.
    private static readonly (string Sql, int Parameters)[] Statements =
    [
        (BeginReadOnly, 0), (Begin, 0), (Rollback, 0), (Commit, 0), (CloseResult, 0), (RowsTouched, 0),
        (SessionSettings.Settings, SessionSettings.SettingsParameters), (SessionSettings.SettingsWithRole, SessionSettings.SettingsParameters),
        .. Reset.Select(sql => (sql, 0)),
    ];

    /// <summary>
    /// The longest a physical connection lives. Npgsql prepares a statement on its <see cref="int.MaxValue"/>th use on one
    /// connection; at 20,000 calls a second, more than one connection answers, twelve hours is 864 million.
    /// </summary>
    public static readonly TimeSpan MaxConnectionLifetime = TimeSpan.FromHours(12);

    /// <summary>
    /// Npgsql looks a statement up among the connection's prepared ones only while automatic preparation is on, and would
    /// prepare any statement used often enough: on, with a threshold no statement reaches on a connection's lifetime, whatever
    /// the connection string says. Npgsql's own reset on return to the pool is off, whatever the connection string says:
    /// <see cref="PooledConnection"/> resets instead, in the work's own round trip where it can. Nor can the connection string
    /// ask for multiplexing (which cannot prepare).
    /// </summary>
    public static void Configure(NpgsqlDataSourceBuilder builder)
    {
        var settings = builder.ConnectionStringBuilder;
        settings.MaxAutoPrepare = 1;
        settings.AutoPrepareMinUsages = int.MaxValue;
        var maxLifetime = (int)MaxConnectionLifetime.TotalSeconds;
        settings.ConnectionLifetime = settings.ConnectionLifetime is > 0 and var lifetime ? Math.Min(lifetime, maxLifetime) : maxLifetime;
        settings.NoResetOnClose = true;
        settings.Multiplexing = false;
        builder.UsePhysicalConnectionInitializer(Prepare, PrepareAsync);
    }

    // Disposing the batch leaves its statements prepared: they stay with the physical connection until it closes.
    private static void Prepare(NpgsqlConnection connection)
    {
        using var batch = Batch(connection);
        batch.Prepare();
    }

    private static async Task PrepareAsync(NpgsqlConnection connection)
    {
        await using var batch = Batch(connection);
        await batch.PrepareAsync().ConfigureAwait(false);
    }

    /// <summary>Adds <see cref="Reset"/> to the end of a batch.</summary>
    public static void AddReset(NpgsqlBatch batch)
    {
        foreach (var sql in Reset)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand(sql));
        }
    }

    private static NpgsqlBatch Batch(NpgsqlConnection connection)
    {
        var batch = connection.CreateBatch();
        foreach (var (sql, parameters) in Statements)
        {
            var command = new NpgsqlBatchCommand(sql);
            for (var i = 0; i < parameters; i++)
            {
                SessionSettings.AddText(command, "");
            }

            batch.BatchCommands.Add(command);
        }

        return batch;
    }
}
