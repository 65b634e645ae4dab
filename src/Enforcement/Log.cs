using Microsoft.Extensions.Logging;

namespace Gatehouse.Enforcement;

/// <summary>Every log message the enforcement layer writes, source-generated. Never pass tokens, secrets or row values.</summary>
internal static partial class Log
{
    // Every call is in the audit log; the console tells refusals and failures, and allowed calls only when asked to (Debug).
    [LoggerMessage(EventId = 1, Message = "{Tool} by {Agent}: {Verdict} ({Rule}) in {DurationMs:0.0} ms, audit {AuditId}")]
    public static partial void CallFinished(ILogger logger, LogLevel level, string tool, string agent, string verdict, string rule, double durationMs, string auditId);

    [LoggerMessage(2, LogLevel.Error, "The audit store could not record call {AuditId}; the call was refused")]
    public static partial void AuditUnavailable(ILogger logger, Exception exception, string auditId);

    [LoggerMessage(3, LogLevel.Error, "Call {AuditId} failed inside the gateway")]
    public static partial void CallCrashed(ILogger logger, Exception exception, string auditId);

    [LoggerMessage(4, LogLevel.Warning, "Database connection {Connection} failed: {Message}")]
    public static partial void DatabaseUnavailable(ILogger logger, string connection, string message);

    [LoggerMessage(5, LogLevel.Warning, "Call {AuditId} refused: the state store could not be read ({What}): {Message}")]
    public static partial void StateUnavailable(ILogger logger, string auditId, string what, string message);
}
