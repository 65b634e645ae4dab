using System.CommandLine;
using Gatehouse.Connectors.Postgres.Setup;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;
using Npgsql;

namespace Gatehouse.McpServer.Cli;

/// <summary>
/// <c>gatehouse setup</c>: creates the strict-mode masking profiles of one connection (roles, schemas of security_barrier
/// views, the gateway's login role as their NOINHERIT member). Idempotent; --dry-run prints the SQL, --check reports drift.
/// </summary>
public static class SetupCommand
{
    public const string AdminEnvironmentVariable = "GATEHOUSE_ADMIN_CONNECTION";

    // A command line is readable by every user of the machine (ps, /proc) and kept in shell history: the admin's password,
    // which may create roles, has no place there. Refused before anything connects.
    private static void RefusePasswordInArguments(string? adminDsn)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(adminDsn ?? "");
        }
        catch (ArgumentException)
        {
            return; // reported as invalid where the string is used
        }

        if (!string.IsNullOrEmpty(builder.Password))
        {
            throw new CliException(
                $"--admin-connection holds a password, which every user of this machine can read in its process list and which shell history keeps; put it in PGPASSWORD or ~/.pgpass, or the whole string in ${AdminEnvironmentVariable}");
        }
    }

    public static Command Create()
    {
        var config = CliApp.ConfigOption();
        var connection = new Option<string>("--connection") { Description = "The strict-mode connection to set up.", Required = true };
        var admin = new Option<string?>("--admin-connection")
        {
            Description = $"An admin connection string (a role that may create roles and read the tables), used only for this run. Default: ${AdminEnvironmentVariable}. "
                + "Put no password in it: PGPASSWORD or ~/.pgpass supply one. Without it, --check and --dry-run read the catalog with the gateway's own credential.",
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the SQL setup would run, and change nothing." };
        var check = new Option<bool>("--check") { Description = $"Report drift between the policy and the database, change nothing, and exit {ExitCodes.Drift} if there is any." };
        var revoke = new Option<bool>("--revoke-public-execute") { Description = "Also revoke PUBLIC's EXECUTE on SECURITY DEFINER functions in the granted schemas." };
        var command = new Command("setup", "Create or update the database masking profiles of a strict-mode connection, in one transaction.")
        {
            config, connection, admin, dryRun, check, revoke,
        };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            RefusePasswordInArguments(parse.GetValue(admin));
            var policy = PolicyLoader.LoadFile(parse.GetValue(config)!);
            var target = Connection(policy, parse.GetValue(connection)!);
            var readOnly = parse.GetValue(dryRun) || parse.GetValue(check);
            var adminDsn = parse.GetValue(admin) ?? Environment.GetEnvironmentVariable(AdminEnvironmentVariable);
            if (adminDsn is null && !readOnly)
            {
                throw new CliException($"setup needs an admin connection to create roles and views: pass --admin-connection or set {AdminEnvironmentVariable} (--check and --dry-run can do without)");
            }

            await using var db = await OpenAsync(target, adminDsn, cancellationToken);
            SetupReport report;
            try
            {
                report = await ProfileSetup.PlanAsync(db, policy, target, ReadPassword(target), parse.GetValue(revoke), cancellationToken, await TimeBoxedGrantsAsync(policy, cancellationToken));
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                throw new CliException($"could not read database '{db.Database}': {(e is PostgresException pg ? pg.MessageText : e.Message)}");
            }

            return parse.GetValue(check) ? await PrintCheckAsync(report)
                : parse.GetValue(dryRun) ? await PrintDryRunAsync(report)
                : await ApplyAsync(db, report, target, parse.GetValue(revoke), cancellationToken);
        }));
        return command;
    }

    // Approved access requests widen an agent's rights for a while; PostgreSQL needs a profile for those rights too.
    private static async Task<IReadOnlyDictionary<string, IReadOnlyList<Grant>>> TimeBoxedGrantsAsync(GatewayPolicy policy, CancellationToken cancellationToken)
    {
        // No state yet (no file, or no schema in the store's database) means no requests; setup does not make the state.
        SqlStateStore state;
        try
        {
            state = (await GatewayState.OpenAsync(policy, cancellationToken, create: false)).Store;
        }
        catch (MissingStateException)
        {
            return new Dictionary<string, IReadOnlyList<Grant>>();
        }

        var approved = await state.ListAsync(AccessRequestStatus.Approved, DateTimeOffset.UtcNow, cancellationToken);
        return approved.GroupBy(r => r.Agent, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<Grant>)g.Select(r => r.ToGrant()).ToList(), StringComparer.Ordinal);
    }

    private static ConnectionConfig Connection(GatewayPolicy policy, string name)
    {
        if (!policy.Connections.TryGetValue(name, out var target))
        {
            throw new CliException($"there is no connection named '{name}'; the policy has: {string.Join(", ", policy.Connections.Keys)}");
        }

        if (!DatabaseProfiles.Apply(target))
        {
            throw new CliException(target.Masking == MaskingMode.Overlay
                ? $"connection '{name}' uses overlay masking, which creates nothing in the database; setup is for strict masking"
                : $"connection '{name}' tags no columns, so there is nothing to mask; tag sensitive columns first (gatehouse classify proposes tags)");
        }

        return target;
    }

    private static bool SetsTlsMode(string dsn) =>
        new System.Data.Common.DbConnectionStringBuilder { ConnectionString = dsn }.Keys.Cast<string>()
            .Any(k => k.Replace(" ", "", StringComparison.Ordinal).Equals("sslmode", StringComparison.OrdinalIgnoreCase));

    // The admin connection goes to the gateway connection's database, whatever database the DSN names.
    private static async Task<NpgsqlConnection> OpenAsync(ConnectionConfig target, string? adminDsn, CancellationToken cancellationToken)
    {
        var gateway = new NpgsqlConnectionStringBuilder(target.ConnectionString);
        NpgsqlConnectionStringBuilder builder;
        if (adminDsn is null)
        {
            builder = new NpgsqlConnectionStringBuilder(target.ConnectionString) { Password = ReadPassword(target) };
            Connectors.Postgres.NpgsqlSettings.ApplyTls(builder, target.Tls);
        }
        else
        {
            try
            {
                builder = new NpgsqlConnectionStringBuilder(adminDsn) { Database = gateway.Database };
            }
            catch (ArgumentException e)
            {
                throw new CliException($"the admin connection string is not valid: {e.Message}");
            }

            // To the same server as the gateway's connection, so under its TLS settings unless the DSN sets its own mode:
            // the admin's credential, and the gateway's new password when setup makes its role, cross this link. Those
            // settings are the policy's sslmode and sslrootcert, or the connection string's own.
            if (!SetsTlsMode(adminDsn))
            {
                // A root certificate the admin DSN names is kept either way.
                var own = builder.RootCertificate;
                if (target.Tls is null)
                {
                    builder.SslMode = gateway.SslMode;
                    builder.RootCertificate = gateway.RootCertificate;
                }
                else
                {
                    Connectors.Postgres.NpgsqlSettings.ApplyTls(builder, target.Tls);
                }

                builder.RootCertificate = own ?? builder.RootCertificate;
            }
        }

        builder.Pooling = false;
        var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
        {
            await connection.DisposeAsync();
            var why = e is PostgresException pg ? pg.MessageText
                : e.GetBaseException() is System.Security.Authentication.AuthenticationException
                    ? "the server's TLS certificate could not be verified under the connection's sslmode and sslrootcert (which the admin connection uses too, unless its DSN sets SSL Mode)"
                : e.Message;
            throw new CliException($"could not connect to database '{gateway.Database}' {(adminDsn is null ? "with the gateway's credential" : "as admin")}: {why}");
        }

        return connection;
    }

    private static string? ReadPassword(ConnectionConfig target)
    {
        try
        {
            return target.Password.Read();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static async Task<int> PrintCheckAsync(SetupReport report)
    {
        await PrintFindingsAsync(report);
        if (report.Drift.Count == 0 && report.Blockers.Count == 0)
        {
            await Console.Out.WriteLineAsync($"In sync: {report.Profiles.Count} profile(s) in database '{report.Database}' match the policy.");
            return ExitCodes.Ok;
        }

        await Console.Out.WriteLineAsync($"Drift: {report.Drift.Count + report.Blockers.Count} difference(s). Run gatehouse setup to bring the database in line.");
        return ExitCodes.Drift;
    }

    private static async Task<int> PrintDryRunAsync(SetupReport report)
    {
        await Console.Out.WriteLineAsync($"-- gatehouse setup for database '{report.Database}': {report.Profiles.Count} profile(s); nothing below has been run.");
        foreach (var line in report.Drift.Concat(report.Blockers).Concat(report.Notes))
        {
            await Console.Out.WriteLineAsync($"-- {line}");
        }

        await Console.Out.WriteLineAsync("BEGIN;");
        foreach (var statement in report.Statements)
        {
            await Console.Out.WriteLineAsync(statement.Shown + ";");
        }

        await Console.Out.WriteLineAsync("COMMIT;");
        return ExitCodes.Ok;
    }

    private static async Task<int> ApplyAsync(NpgsqlConnection db, SetupReport report, ConnectionConfig target, bool revoke, CancellationToken cancellationToken)
    {
        await PrintFindingsAsync(report);
        if (report.Blockers.Count > 0)
        {
            throw new CliException($"setup changed nothing: {report.Blockers.Count} problem(s) above must be fixed first", refused: true);
        }

        if (report.Drift.Count == 0 && !revoke)
        {
            await Console.Out.WriteLineAsync($"Already in sync: {report.Profiles.Count} profile(s) in database '{report.Database}'. Nothing to do.");
            return ExitCodes.Ok;
        }

        try
        {
            await ProfileSetup.ApplyAsync(db, report, cancellationToken);
        }
        catch (PostgresException e)
        {
            throw new CliException($"setup changed nothing (rolled back): PostgreSQL refused a statement: {e.MessageText}");
        }

        await Console.Out.WriteLineAsync($"Set up {report.Profiles.Count} profile(s) for connection '{target.Name}' in database '{report.Database}' ({report.Statements.Count} statements, one transaction):");
        foreach (var profile in report.Profiles)
        {
            var masked = profile.Masked.Count == 0 ? "sees every class unmasked" : $"masks {string.Join(", ", profile.Masked.Order(StringComparer.Ordinal))}";
            await Console.Out.WriteLineAsync($"  {profile.Name}  {masked}  ({string.Join(", ", profile.UsedBy)})");
        }

        return ExitCodes.Ok;
    }

    private static async Task PrintFindingsAsync(SetupReport report)
    {
        foreach (var blocker in report.Blockers)
        {
            await Console.Error.WriteLineAsync($"problem: {blocker}");
        }

        foreach (var drift in report.Drift)
        {
            await Console.Out.WriteLineAsync($"drift: {drift}");
        }

        foreach (var note in report.Notes)
        {
            await Console.Out.WriteLineAsync($"note: {note}");
        }
    }
}
