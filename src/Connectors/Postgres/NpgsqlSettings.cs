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
    /// With SQL rewriting on, Npgsql splits <c>a; b</c> and runs both. Off, every command is one prepared statement
    /// and PostgreSQL itself refuses a second one. Must be set before Npgsql is first used.
    /// </summary>
    public static void DisableSqlRewriting() => AppContext.SetSwitch("Npgsql.EnableSqlRewriting", false);

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
