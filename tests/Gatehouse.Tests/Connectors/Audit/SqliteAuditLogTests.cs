using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>The audit contract against the embedded SQLite state file.</summary>
public sealed class SqliteAuditLogTests : AuditLogContract
{
    private readonly string _path = Path.Combine(TestDirectory.Create("audit"), "state.db");

    protected override async Task<IAuditLog> OpenAsync(bool again = false) => await SqliteStateStore.OpenAsync(_path, CancellationToken.None);

    protected override async Task TamperAsync(string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={_path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}

/// <summary>The state contract against the embedded SQLite state file.</summary>
public sealed class SqliteStateStoreTests : StateStoreContract
{
    private readonly string _path = Path.Combine(TestDirectory.Create("state"), "state.db");

    protected override async Task<SqlStateStore> OpenAsync(bool again = false) => await SqliteStateStore.OpenAsync(_path, CancellationToken.None);
}
