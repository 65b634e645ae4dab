using System.Security.Cryptography;
using Gatehouse.Enforcement.Classification;
using Microsoft.IdentityModel.Tokens;
using Npgsql;

namespace Gatehouse.McpServer.Demo;

/// <summary>Creates the sample shop database and a least-privilege login role for the gateway.</summary>
public static class ShopDatabase
{
    public static string ScriptPath => Path.Combine(AppContext.BaseDirectory, "samples", "shop.sql");

    /// <summary>Creates <paramref name="database"/>, loads the shop, and creates <paramref name="role"/>; returns the role's new password.</summary>
    /// <param name="directGrants">Grant the role the shop's tables itself; false when strict masking's profiles will grant them instead.</param>
    public static async Task<string> CreateAsync(string adminConnectionString, string database, string role, CancellationToken cancellationToken, bool directGrants = true)
    {
        var password = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(24));
        await using (var admin = new NpgsqlConnection(adminConnectionString))
        {
            await admin.OpenAsync(cancellationToken);
            await ExecuteAsync(admin, $"CREATE DATABASE \"{database}\"", cancellationToken);
            // The generated password is base64url, so it cannot break out of the literal.
            await ExecuteAsync(admin, $"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE", cancellationToken);
            // So the gateway's statement probe can keep parse trees out of the server log (PostgreSQL 15 and later).
            if (admin.PostgreSqlVersion.Major >= 15)
            {
                await ExecuteAsync(admin, $"GRANT SET ON PARAMETER log_min_messages TO \"{role}\"", cancellationToken);
            }
        }

        var builder = new NpgsqlConnectionStringBuilder(adminConnectionString) { Database = database };
        await using var shop = new NpgsqlConnection(builder.ConnectionString);
        await shop.OpenAsync(cancellationToken);
        foreach (var statement in StatementReader.Read(await File.ReadAllTextAsync(ScriptPath, cancellationToken)))
        {
            await ExecuteAsync(shop, statement.Sql, cancellationToken);
        }

        string[] grants =
        [
            $"REVOKE ALL ON DATABASE \"{database}\" FROM PUBLIC",
            $"GRANT CONNECT ON DATABASE \"{database}\" TO \"{role}\"",
            $"GRANT USAGE ON SCHEMA public TO \"{role}\"",
            $"GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{role}\"",
            $"GRANT INSERT, UPDATE, DELETE ON orders, payments TO \"{role}\"",
            $"GRANT USAGE ON SEQUENCE invoice_seq TO \"{role}\"",
        ];
        foreach (var grant in directGrants ? grants : grants[..2])
        {
            await ExecuteAsync(shop, grant, cancellationToken);
        }

        return password;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
