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
        Log.Information(
            "Gatehouse ready: {Listening}; connections {Connections}; issuers {Issuers}; state {State}; policy {PolicyPath} {PolicyHash}",
            listening,
            policy.Connections.Values.Select(Describe).ToArray(),
            policy.Issuers.Select(i => i.Issuer).ToArray(),
            policy.Gateway.Store.PostgresConnectionString is { } store ? "PostgreSQL " + Server(store) : "SQLite " + policy.Gateway.StatePath,
            policy.SourcePath,
            policy.Hash);
        foreach (var connection in policy.Connections.Values)
        {
            if (TlsOf(connection) is { Verifies: false } tls && !Local(connection.ConnectionString))
            {
                Log.Warning(
                    "Connection {Connection}: TLS to PostgreSQL does not verify the server (sslmode {Mode}), so a man in the middle could read the data and the gateway's login; set sslmode: verify-full and sslrootcert",
                    connection.Name,
                    tls.Mode);
            }
        }
    }

    private static string Describe(ConnectionConfig connection) =>
        $"{connection.Name} ({Server(connection.ConnectionString)}, TLS {TlsOf(connection).Mode}, {connection.Masking.ToString().ToLowerInvariant()} masking)";

    // The policy's sslmode, or what the connection string says (Npgsql's default is prefer: TLS when offered, unverified).
    private static TlsSettings TlsOf(ConnectionConfig connection)
    {
        if (connection.Tls is { } tls)
        {
            return tls;
        }

        try
        {
            var mode = new NpgsqlConnectionStringBuilder(connection.ConnectionString).SslMode;
            return new TlsSettings(mode switch { SslMode.VerifyCA => "verify-ca", SslMode.VerifyFull => "verify-full", _ => mode.ToString().ToLowerInvariant() }, null);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            return new TlsSettings("prefer", null);
        }
    }

    // Loopback and Unix sockets never leave the machine.
    private static bool Local(string connectionString)
    {
        try
        {
            var host = new NpgsqlConnectionStringBuilder(connectionString).Host ?? "";
            return host.Split(',').All(h => h.StartsWith('/') || h is "localhost" or "127.0.0.1" or "::1" or "[::1]");
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            return false;
        }
    }

    // Only the parts that say which server: a password in the string (never there by policy) could not leak from here.
    // A string Npgsql cannot read fails that connection's calls with the reason; it must not stop the gateway here.
    private static string Server(string connectionString)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            return $"{builder.Username}@{builder.Host}:{builder.Port}/{builder.Database}";
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            return "a connection string Npgsql cannot read";
        }
    }
}
