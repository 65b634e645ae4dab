using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;
using Npgsql;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>The audit contract against the PostgreSQL store, each test in a database of its own.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresAuditLogTests(PostgresFixture pg) : AuditLogContract, IAsyncLifetime
{
    private readonly List<PostgresStateStore> _opened = [];
    private string _connectionString = "";

    public async Task InitializeAsync() => _connectionString = await pg.CreateDatabaseAsync("audit");

    public async Task DisposeAsync()
    {
        foreach (var log in _opened)
        {
            await log.DisposeAsync();
        }
    }

    protected override async Task<IAuditLog> OpenAsync(bool again = false)
    {
        var log = await PostgresStateStore.OpenAsync(_connectionString, () => null, CancellationToken.None);
        _opened.Add(log);
        return log;
    }

    protected override async Task TamperAsync(string sql)
    {
        var builder = new NpgsqlConnectionStringBuilder(_connectionString) { SearchPath = PostgresStateStore.SchemaName };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        foreach (var statement in sql.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            await using var command = new NpgsqlCommand(statement, connection);
            await command.ExecuteNonQueryAsync();
        }
    }
}

/// <summary>The state contract against PostgreSQL, each test in a database of its own.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresStateStoreTests(PostgresFixture pg) : StateStoreContract, IAsyncLifetime
{
    private readonly List<PostgresStateStore> _opened = [];
    private string _connectionString = "";

    public async Task InitializeAsync() => _connectionString = await pg.CreateDatabaseAsync("state");

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            await store.DisposeAsync();
        }
    }

    protected override async Task<SqlStateStore> OpenAsync(bool again = false)
    {
        var store = await PostgresStateStore.OpenAsync(_connectionString, () => null, CancellationToken.None);
        _opened.Add(store);
        return store;
    }
}
