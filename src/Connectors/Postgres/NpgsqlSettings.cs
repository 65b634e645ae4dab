using Gatehouse.Enforcement.Policy;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>Process-wide Npgsql switches the gateway depends on.</summary>
public static class NpgsqlSettings
{
    // libpq's sslmode names (the policy's) against Npgsql's.
    private static readonly (string Name, SslMode Mode)[] TlsModes =
    [
        ("disable", SslMode.Disable), ("allow", SslMode.Allow), ("prefer", SslMode.Prefer),
        ("require", SslMode.Require), ("verify-ca", SslMode.VerifyCA), ("verify-full", SslMode.VerifyFull),
    ];

    /// <summary>
    /// Sets the switches, which must be set before Npgsql is first used:
    /// <list type="bullet">
    /// <item>SQL rewriting off. On, Npgsql splits <c>a; b</c> and runs both. Off, every command is one prepared statement
    /// and PostgreSQL itself refuses a second one.</item>
    /// <item>No infinity conversions. On, a date or timestamp of <c>infinity</c> reads as 9999-12-31 and <c>-infinity</c> as
    /// 0001-01-01, both real dates. Off, such a value fails to convert: the result reader reads dates and timestamps raw and
    /// renders them itself, and an array or range holding one says it cannot be rendered instead of lying.</item>
    /// </list>
    /// </summary>
    public static void ApplySwitches()
    {
        AppContext.SetSwitch("Npgsql.EnableSqlRewriting", false);
        AppContext.SetSwitch("Npgsql.DisableDateTimeInfinityConversions", true);
    }

    /// <summary>Applies a connection's sslmode and sslrootcert (libpq's terms) to Npgsql's settings.</summary>
    public static void ApplyTls(NpgsqlConnectionStringBuilder builder, TlsSettings? tls)
    {
        if (tls is null)
        {
            return;
        }

        builder.SslMode = TlsModes.First(m => m.Name == tls.Mode).Mode;
        builder.RootCertificate = tls.RootCertificate;
    }

    /// <summary>libpq's name for an Npgsql SSL mode, as the policy spells it.</summary>
    public static string TlsModeName(SslMode mode) => TlsModes.First(m => m.Mode == mode).Name;
}
