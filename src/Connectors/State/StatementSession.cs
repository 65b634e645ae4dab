using System.Data.Common;
using Microsoft.Win32.SafeHandles;

namespace Gatehouse.Connectors.State;

/// <summary>
/// A connection kept open with its statements: each is created once and run again with new values, so SQLite compiles it
/// once rather than on every use. The audit writer keeps one; readers take one from <see cref="SqlAuditLog"/>'s idle set.
/// The stores never build SQL from values (values are always bound), so a session holds a small, fixed set of statements.
/// </summary>
internal sealed class StatementSession(DbConnection connection, Action<DbCommand, IReadOnlyList<object?>> bind) : IAsyncDisposable
{
    private readonly Dictionary<string, DbCommand> _commands = new(StringComparer.Ordinal);

    public DbConnection Connection => connection;

    /// <summary>Whether the connection's commits wait for the disk now; null until the writer first sets it.</summary>
    public bool? Flushes { get; set; }

    /// <summary>The store's log file, for the writer to flush to disk after its commits; closed with the session unless taken first.</summary>
    public SafeFileHandle? Log { get; set; }

    /// <summary>The session's statement for <paramref name="sql"/>, with these values bound; the session disposes it.</summary>
    public DbCommand Command(string sql, IReadOnlyList<object?> values, DbTransaction? transaction)
    {
        if (_commands.TryGetValue(sql, out var command))
        {
            for (var i = 0; i < values.Count; i++)
            {
                command.Parameters[i].Value = values[i] ?? DBNull.Value;
            }
        }
        else
        {
            command = connection.CreateCommand();
            command.CommandText = sql;
            bind(command, values);
            _commands.Add(sql, command);
        }

        command.Transaction = transaction;
        return command;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var command in _commands.Values)
        {
            await command.DisposeAsync().ConfigureAwait(false);
        }

        Log?.Dispose();
        await connection.DisposeAsync().ConfigureAwait(false);
    }
}
