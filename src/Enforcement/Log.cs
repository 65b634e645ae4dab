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

    [LoggerMessage(5, LogLevel.Warning, "Call {AuditId} refused: the state store did not answer, so the gateway could not {What}: {Message}")]
    public static partial void StateUnavailable(ILogger logger, string auditId, string what, string message);

    [LoggerMessage(6, LogLevel.Warning, "Approval request {RequestId}: the state store did not answer a poll for its decision; the call keeps waiting: {Message}")]
    public static partial void ApprovalPollFailed(ILogger logger, string requestId, string message);

    [LoggerMessage(7, LogLevel.Warning, "Approval request {RequestId} ran, but the state store did not answer to mark it used; it stays running, and cannot run again, until it lapses at {ExpiresAt:u}. Result lost for a caller who had left: {ResultLost}: {Message}")]
    public static partial void ApprovalRunNotFinished(ILogger logger, string requestId, DateTimeOffset expiresAt, bool resultLost, string message);

    [LoggerMessage(8, LogLevel.Warning, "Access request {RequestId} was filed, but the state store did not answer when the agent's requests were listed after; the caller is told it is filed: {Message}")]
    public static partial void RequestsNotListed(ILogger logger, string requestId, string message);

    [LoggerMessage(9, LogLevel.Error, "Approval request {RequestId}: the operator's answer ({Answer}) is counted, but its audit record could not be written: {Message}")]
    public static partial void OperatorAnswerNotRecorded(ILogger logger, string requestId, string answer, string message);
}
