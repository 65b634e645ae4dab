using System.Net.Sockets;
using Gatehouse.Enforcement.Execution;
using Npgsql;

namespace Gatehouse.Connectors.Postgres;

/// <summary>Turns Npgsql failures into <see cref="DatabaseException"/>s whose messages are safe to show an agent.</summary>
internal static class PostgresErrors
{
    /// <param name="positionOffset">How many characters the gateway put before the agent's SQL, so error positions point into the agent's text.</param>
    public static DatabaseException Map(Exception e, bool connecting = false, int positionOffset = 0)
    {
        if (e is PostgresException pg)
        {
            if (pg.SqlState == PostgresErrorCodes.QueryCanceled)
            {
                return new DatabaseException(DatabaseFailure.Timeout, "the statement was cancelled after its timeout", pg.SqlState, pg);
            }

            if (pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState.StartsWith("57P", StringComparison.Ordinal) || pg.SqlState == PostgresErrorCodes.TooManyConnections)
            {
                return new DatabaseException(DatabaseFailure.Unavailable, Clipped(pg.MessageText), pg.SqlState, pg);
            }

            if (pg.SqlState == PostgresErrorCodes.InsufficientPrivilege)
            {
                return new DatabaseException(DatabaseFailure.PermissionDenied, Clipped(pg.MessageText), pg.SqlState, pg);
            }

            if (pg.SqlState.StartsWith("28", StringComparison.Ordinal))
            {
                return new DatabaseException(DatabaseFailure.Unavailable, "the gateway's database credential was refused; an admin must fix the connection settings", pg.SqlState, pg);
            }

            var position = pg.Position > positionOffset ? $" at character {pg.Position - positionOffset}" : "";
            return new DatabaseException(DatabaseFailure.Rejected, Clipped(pg.MessageText) + position, pg.SqlState, pg);
        }

        if (connecting && InnerChain(e).Any(x => x is System.Security.Authentication.AuthenticationException))
        {
            return new DatabaseException(
                DatabaseFailure.Unavailable,
                "the database server's TLS certificate could not be verified: is the connection's sslrootcert the CA that signed it, and does the host name match the certificate?",
                null,
                e);
        }

        var unreachable = connecting || e is TimeoutException || e.InnerException is SocketException or IOException or TimeoutException
            || (e is NpgsqlException { IsTransient: true });
        return unreachable
            ? new DatabaseException(DatabaseFailure.Unavailable, "the database did not answer (connection failed or was lost)", null, e)
            : new DatabaseException(DatabaseFailure.Rejected, Clipped(e.Message), null, e);
    }

    /// <summary>
    /// The most of a database error's text passed on. PostgreSQL quotes the offending input in full, so
    /// <c>select repeat('x', 300000000)::int</c> made a 300 MB message, copied into the refusal, the audit record, its
    /// chain, the sink and the answer.
    /// </summary>
    public const int MaxMessageLength = 2_000;

    internal static string Clipped(string message) =>
        message.Length <= MaxMessageLength ? message : $"{message[..MaxMessageLength]}… ({message.Length - MaxMessageLength:N0} more characters not shown)";

    private static IEnumerable<Exception> InnerChain(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            yield return x;
        }
    }
}
