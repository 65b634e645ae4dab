using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Policy;
using Npgsql;
using Serilog;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// One structured log line once the gateway serves: where it listens, which connections (server, database and login
/// role; never a password), which issuers, where its state lives, and the policy's hash.
/// </summary>
public static class StartupSummary
{
    public static void Write(GatewayPolicy policy, string listening)
    {
        var connections = policy.Connections.Values.Select(c => (Config: c, Settings: Effective(c.ConnectionString, c.Tls))).ToList();
        Log.Information(
            "Gatehouse ready: {Listening}; connections {Connections}; issuers {Issuers}; state {State}; policy {PolicyPath} {PolicyHash}",
            listening,
            connections.Select(c => Describe(c.Config, c.Settings)).ToArray(),
            policy.Issuers.Select(i => i.Issuer).ToArray(),
            policy.Gateway.Store.PostgresConnectionString is { } store ? "PostgreSQL " + Server(Effective(store, null)) : "SQLite " + policy.Gateway.StatePath,
            policy.SourcePath,
            policy.Hash);
        foreach (var (connection, settings) in connections)
        {
            if (settings is { SslMode: not (SslMode.VerifyCA or SslMode.VerifyFull) } && !Local(settings))
            {
                Log.Warning(
                    "Connection {Connection}: TLS to PostgreSQL does not verify the server (sslmode {Mode}), so a man in the middle could read the data and the gateway's login; set sslmode: verify-full and sslrootcert",
                    connection.Name,
                    NpgsqlSettings.TlsModeName(settings.SslMode));
            }
        }
    }

    private static string Describe(ConnectionConfig connection, NpgsqlConnectionStringBuilder? settings) =>
        $"{connection.Name} ({Server(settings)}, TLS {(settings is null ? "?" : NpgsqlSettings.TlsModeName(settings.SslMode))}, {connection.Masking.ToString().ToLowerInvariant()} masking)";

    // The settings the pools use: the connection string with the policy's sslmode (Npgsql's default is prefer: TLS when
    // offered, unverified). A string Npgsql cannot read fails that connection's calls with the reason; it must not stop
    // the gateway here.
    private static NpgsqlConnectionStringBuilder? Effective(string connectionString, TlsSettings? tls)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            NpgsqlSettings.ApplyTls(builder, tls);
            return builder;
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            return null;
        }
    }

    // Loopback and Unix sockets never leave the machine.
    private static bool Local(NpgsqlConnectionStringBuilder settings) =>
        (settings.Host ?? "").Split(',').All(h => h.StartsWith('/') || h is "localhost" or "127.0.0.1" or "::1" or "[::1]");

    // Only the parts that say which server: a password in the string (never there by policy) could not leak from here.
    private static string Server(NpgsqlConnectionStringBuilder? settings) =>
        settings is null ? "a connection string Npgsql cannot read" : $"{settings.Username}@{settings.Host}:{settings.Port}/{settings.Database}";
}
