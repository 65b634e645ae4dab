using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// The gateway's own statements around every call (the transaction's start and end, the settings row), prepared once on each
/// physical connection: a call's round trip then skips parsing and planning them. An agent's SQL is never prepared. A
/// prepared statement outlives the call on the pooled connection, where the next agent's statement could read its text
/// back (<c>pg_prepared_statements</c>), literals and all.
/// </summary>
internal static class FixedStatements
{
    /// <summary>The statements, in the form the executor sends them (the same text and parameter types).</summary>
    public static readonly IReadOnlyList<string> Sql = ["BEGIN READ ONLY", "BEGIN", SessionSettings.Settings, SessionSettings.SettingsWithRole, "ROLLBACK", "COMMIT"];

    /// <summary>
    /// Npgsql looks a statement up among the connection's prepared ones only while automatic preparation is on, and would
    /// prepare any statement used often enough: on, with a threshold no statement reaches, whatever the connection string says.
    /// </summary>
    public static void Configure(NpgsqlDataSourceBuilder builder)
    {
        builder.ConnectionStringBuilder.MaxAutoPrepare = 1;
        builder.ConnectionStringBuilder.AutoPrepareMinUsages = int.MaxValue;
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

    private static NpgsqlBatch Batch(NpgsqlConnection connection)
    {
        var batch = connection.CreateBatch();
        foreach (var sql in Sql)
        {
            var command = new NpgsqlBatchCommand(sql);
            var parameters = sql.Contains(SessionSettings.Marker, StringComparison.Ordinal) ? SessionSettings.SettingsParameters : 0;
            for (var i = 0; i < parameters; i++)
            {
                SessionSettings.AddText(command, "");
            }

            batch.BatchCommands.Add(command);
        }

        return batch;
    }
}
