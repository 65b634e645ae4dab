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
    public static void Write(GatewayPolicy policy, string listening) =>
        Log.Information(
            "Gatehouse ready: {Listening}; connections {Connections}; issuers {Issuers}; state {State}; policy {PolicyPath} {PolicyHash}",
            listening,
            policy.Connections.Values.Select(Describe).ToArray(),
            policy.Issuers.Select(i => i.Issuer).ToArray(),
            policy.Gateway.Store.PostgresConnectionString is { } store ? "PostgreSQL " + Server(store) : "SQLite " + policy.Gateway.StatePath,
            policy.SourcePath,
            policy.Hash);

    private static string Describe(ConnectionConfig connection) =>
        $"{connection.Name} ({Server(connection.ConnectionString)}, {connection.Masking.ToString().ToLowerInvariant()} masking)";

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
