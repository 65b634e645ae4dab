namespace Gatehouse.Connectors.Postgres;

/// <summary>Process-wide Npgsql switches the gateway depends on.</summary>
public static class NpgsqlSettings
{
    /// <summary>
    /// With SQL rewriting on, Npgsql splits <c>a; b</c> and runs both. Off, every command is one prepared statement
    /// and PostgreSQL itself refuses a second one. Must be set before Npgsql is first used.
    /// </summary>
    public static void DisableSqlRewriting() => AppContext.SetSwitch("Npgsql.EnableSqlRewriting", false);
}
