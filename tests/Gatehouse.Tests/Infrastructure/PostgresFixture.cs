using Gatehouse.Connectors.Postgres;
using Gatehouse.McpServer.Demo;
using Npgsql;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>
/// One real PostgreSQL for the whole run: a throwaway server started with initdb + pg_ctl, or the server named by
/// GATEHOUSE_TEST_PG (an admin connection string). It holds the sample shop and a least-privilege gateway role.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    public const string EnvironmentVariable = "GATEHOUSE_TEST_PG";

    private LocalPostgresServer? _server;

    public string AdminConnectionString { get; private set; } = "";

    public string Database { get; } = "shop_" + Guid.NewGuid().ToString("N")[..8];

    public string GatewayRole { get; } = "gatehouse_" + Guid.NewGuid().ToString("N")[..8];

    public string GatewayPassword { get; private set; } = "";

    public string Host { get; private set; } = "127.0.0.1";

    public int Port { get; private set; }

    /// <summary>What the server writes to its log: the local server's file (a server named by GATEHOUSE_TEST_PG keeps its own log out of reach).</summary>
    public string ReadServerLog() => _server is null
        ? throw new InvalidOperationException($"the server log is read only from the server the tests start; unset {EnvironmentVariable} to run this test")
        : File.ReadAllText(Path.Combine(_server.DataDirectory, "server.log"));

    /// <summary>The gateway's connection string, without the password (that comes from a file, as in production).</summary>
    public string GatewayConnectionString => $"Host={Host};Port={Port};Database={Database};Username={GatewayRole};Pooling=true";

    public async Task InitializeAsync()
    {
        NpgsqlSettings.ApplySwitches();
        var external = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            AdminConnectionString = external;
            var builder = new NpgsqlConnectionStringBuilder(external);
            Host = builder.Host!.StartsWith('/') ? "127.0.0.1" : builder.Host;
            Port = builder.Port;
        }
        else
        {
            _server = await LocalPostgresServer.StartAsync(TestDirectory.Create("pg"), CancellationToken.None);
            AdminConnectionString = _server.AdminConnectionString;
            Port = _server.Port;
        }

        GatewayPassword = await ShopDatabase.CreateAsync(AdminConnectionString, Database, GatewayRole, CancellationToken.None);
    }

    /// <summary>Runs admin SQL (one statement) in the shop database.</summary>
    public async Task<object?> AdminScalarAsync(string sql)
    {
        var builder = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = Database };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    /// <summary>Runs one statement in the test database as <paramref name="role"/> (SET ROLE from the admin's session).</summary>
    public async Task AdminAsAsync(string role, string sql)
    {
        var builder = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = Database };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        foreach (var statement in new[] { $"SET ROLE {role}", sql })
        {
            await using var command = new NpgsqlCommand(statement, connection);
            await command.ExecuteNonQueryAsync();
        }
    }

    /// <summary>Creates an empty database of its own for a test and returns an admin connection string to it.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 63)];
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString;
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
            TestDirectory.Remove(_server.Directory);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}
