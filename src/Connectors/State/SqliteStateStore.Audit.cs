using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Connectors.State;

/// <summary>The audit log in the state file: <see cref="SqlAuditLog"/> over SQLite.</summary>
public sealed partial class SqliteStateStore : SqlStateStore
{
    protected override async Task<DbConnection> OpenAuditConnectionAsync(CancellationToken cancellationToken) =>
        await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

    // PostgreSQL parses each statement on the server either way, and Npgsql's pool already keeps its connections; SQLite
    // compiles statements in the process, so reusing them is what saves the time.
    protected override bool KeepsReaders => true;

    // SQLite reads $1..$n as parameter names.
    protected override void Bind(DbCommand command, IReadOnlyList<object?> values)
    {
        var parameters = ((SqliteCommand)command).Parameters;
        for (var i = 0; i < values.Count; i++)
        {
            parameters.AddWithValue($"${i + 1}", values[i] ?? DBNull.Value);
        }
    }

    protected override string Contains(string haystack, string needle) => $"instr({haystack}, {needle}) > 0";
}
