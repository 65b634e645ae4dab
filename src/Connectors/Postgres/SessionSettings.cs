using System.Globalization;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Npgsql;
using NpgsqlTypes;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// The transaction-local settings every call starts with: timeouts, and the verified caller for PostgreSQL's own logs and
/// row-level security policies: <c>gatehouse.agent</c>, <c>gatehouse.groups</c> (comma-separated), <c>gatehouse.subject</c>,
/// <c>gatehouse.delegated_by</c> (empty when nobody delegated) and <c>gatehouse.call_id</c>.
/// </summary>
internal static class SessionSettings
{
    /// <summary>The single column of the settings row, so readers can skip it.</summary>
    public const string Marker = "gatehouse_session";

    /// <summary>
    /// One SELECT of set_config(..., is_local =&gt; true): values travel as parameters, so nothing from a token is spliced into SQL,
    /// and they end with the transaction.
    /// </summary>
    /// <param name="role">The role to become: a strict-mode masking profile (whose schema names resolve in) or a group's mapped role.</param>
    public static NpgsqlBatchCommand Create(TimeSpan statementTimeout, string searchPath, SessionRole? role, AgentIdentity caller, string callId)
    {
        var command = new NpgsqlBatchCommand(role is null ? Settings : SettingsWithRole);
        var timeoutMs = ((long)statementTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        var lockMs = ((long)Math.Min(statementTimeout.TotalMilliseconds, 5000)).ToString(CultureInfo.InvariantCulture);
        AddText(command, timeoutMs);
        AddText(command, lockMs);
        AddText(command, Truncate($"gatehouse:{caller.Agent}", 63));
        AddText(command, caller.Agent);
        AddText(command, callId);
        AddText(command, role?.Schema ?? searchPath);
        // $7 is the role; without one a placeholder keeps the later positions fixed (the SQL does not use it).
        AddText(command, role?.Role ?? "");
        // Comma-separated, so a group whose name holds a comma (an LDAP DN: CN=Readers,OU=Groups,...) is left out here, where
        // it would read as other groups to a policy splitting on commas; its grants in the gateway hold all the same.
        AddText(command, string.Join(",", caller.Groups.Where(g => !g.Contains(',', StringComparison.Ordinal))));
        AddText(command, caller.Subject);
        AddText(command, caller.DelegatedBy ?? "");
        return command;
    }

    // The gateway reads a statement's strings as PostgreSQL does by default ('a\' is the string a\). A database or role set
    // to read backslashes as escapes would see other strings, comments and statements in the same text (its 'a\' --' is one
    // string, and what follows is not a comment), so two statements the gateway reads alike, and classifies once, could do
    // different things. Pinned for every transaction the agent's text reaches: the probe, EXPLAIN and the run.
    private const string StringsAsWritten = "set_config('standard_conforming_strings', 'on', true)";

    private const string SettingsList =
        StringsAsWritten + " || set_config('statement_timeout', $1, true) || set_config('lock_timeout', $2, true)"
        + " || set_config('idle_in_transaction_session_timeout', $1, true) || set_config('search_path', $6, true)"
        + " || set_config('application_name', $3, true) || set_config('gatehouse.agent', $4, true)"
        + " || set_config('gatehouse.call_id', $5, true) || set_config('gatehouse.groups', $8, true)"
        + $" || set_config('gatehouse.subject', $9, true) || set_config('gatehouse.delegated_by', $10, true) AS {Marker}";

    /// <summary>The settings row's SQL without a role to become, and with one (<c>$7</c>); the same ten text parameters.</summary>
    public const string Settings = "SELECT " + SettingsList;

    /// <inheritdoc cref="Settings"/>
    public const string SettingsWithRole = "SELECT set_config('role', $7, true) || " + SettingsList;

    /// <summary>How many parameters the settings row takes, all text.</summary>
    public const int SettingsParameters = 10;

    /// <summary>
    /// The settings for an EXPLAIN: a timeout, and the same role and search_path the statement will run with; with
    /// <paramref name="pruning"/> off, no partition is pruned, in planning or as the plan starts.
    /// </summary>
    public static NpgsqlBatchCommand ForExplain(TimeSpan timeout, string searchPath, SessionRole? role, bool pruning = true)
    {
        var command = new NpgsqlBatchCommand(
            (role is null ? "SELECT " : "SELECT set_config('role', $3, true) || ")
            + StringsAsWritten + " || set_config('statement_timeout', $1, true) || set_config('search_path', $2, true)"
            + (pruning ? "" : " || set_config('enable_partition_pruning', 'off', true)")
            + $" AS {Marker}");
        AddText(command, ((long)timeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture));
        AddText(command, role?.Schema ?? searchPath);
        if (role is not null)
        {
            AddText(command, role.Role);
        }

        return command;
    }

    // What PostgreSQL answers when a role cannot be set: it does not exist (22023 invalid value, 42704 undefined object) or
    // the login role is not its member (42501). Anything else, such as a server shutting down mid-call, is not about roles.
    private static readonly HashSet<string> RoleRefusals = ["22023", "42704", "42501"];

    /// <summary>
    /// A failure of the settings row itself. With a profile that means PostgreSQL would not let the gateway become the
    /// profile role (it does not exist, or the login role is not its member): setup has not run for these rights.
    /// </summary>
    public static DatabaseException? ProfileFailure(Exception e, SessionRole? role) =>
        role is null || e is not PostgresException { BatchCommand.CommandText: var text } pg || !text.Contains(Marker, StringComparison.Ordinal)
            || !RoleRefusals.Contains(pg.SqlState) ? null
        : role.Schema is not null ? new DatabaseException(DatabaseFailure.ProfileMissing, $"the database has no usable masking profile {role.Role} ({pg.MessageText})", pg.SqlState, pg)
        : new DatabaseException(DatabaseFailure.PermissionDenied, $"the gateway cannot act as role '{role.Role}', which the connection maps to the caller's group ({pg.MessageText}); an admin must GRANT {role.Role} TO the gateway's login role", pg.SqlState, pg);

    /// <summary>Adds positional parameters as untyped text, so PostgreSQL infers each type from where it is used.</summary>
    public static void AddParameters(NpgsqlBatchCommand command, IReadOnlyList<string?> parameters)
    {
        foreach (var value in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Unknown });
        }
    }

    internal static void AddText(NpgsqlBatchCommand command, string value) =>
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Text });

    // Not between the halves of a surrogate pair (an emoji in an agent's name): Npgsql cannot encode half of one.
    private static string Truncate(string text, int max) =>
        text.Length <= max ? text : text[..(char.IsHighSurrogate(text[max - 1]) ? max - 1 : max)];
}
