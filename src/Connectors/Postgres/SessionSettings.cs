using System.Globalization;
using Gatehouse.Enforcement.Identity;
using Npgsql;
using NpgsqlTypes;

namespace Gatehouse.Connectors.Postgres;

/// <summary>The transaction-local settings every call starts with: timeouts, and the agent's name for PostgreSQL's own logs.</summary>
internal static class SessionSettings
{
    /// <summary>The single column of the settings row, so readers can skip it.</summary>
    public const string Marker = "gatehouse_session";

    /// <summary>
    /// One SELECT of set_config(..., is_local =&gt; true): values travel as parameters, so nothing from a token is spliced into SQL,
    /// and they end with the transaction.
    /// </summary>
    public static NpgsqlBatchCommand Create(TimeSpan statementTimeout, string searchPath, AgentIdentity caller, string callId)
    {
        var command = new NpgsqlBatchCommand(
            "SELECT set_config('statement_timeout', $1, true) || set_config('lock_timeout', $2, true)"
            + " || set_config('idle_in_transaction_session_timeout', $1, true) || set_config('search_path', $6, true)"
            + " || set_config('application_name', $3, true) || set_config('gatehouse.agent', $4, true)"
            + $" || set_config('gatehouse.call_id', $5, true) AS {Marker}");
        var timeoutMs = ((long)statementTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        var lockMs = ((long)Math.Min(statementTimeout.TotalMilliseconds, 5000)).ToString(CultureInfo.InvariantCulture);
        AddText(command, timeoutMs);
        AddText(command, lockMs);
        AddText(command, Truncate($"gatehouse:{caller.Agent}", 63));
        AddText(command, caller.Agent);
        AddText(command, callId);
        AddText(command, searchPath);
        return command;
    }

    /// <summary>Adds positional parameters as untyped text, so PostgreSQL infers each type from where it is used.</summary>
    public static void AddParameters(NpgsqlBatchCommand command, IReadOnlyList<string?> parameters)
    {
        foreach (var value in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Unknown });
        }
    }

    private static void AddText(NpgsqlBatchCommand command, string value) =>
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Text });

    private static string Truncate(string text, int max) => text.Length <= max ? text : text[..max];
}
