namespace Gatehouse.McpServer.Hosting;

/// <summary>The host's log messages, source-generated and gathered in one place.</summary>
internal static partial class HostLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Audit retention purged {Purged} record(s) through chain link {ThroughSeq}; a signed checkpoint keeps the rest verifiable")]
    public static partial void RetentionPurged(ILogger logger, int purged, long throughSeq);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Audit retention could not purge this round; it tries again at the next")]
    public static partial void RetentionFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Stopping: no new calls; waiting up to {DeadlineSeconds} s for {Running} call(s) in flight")]
    public static partial void Stopping(ILogger logger, double deadlineSeconds, int running);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "Stopped: every call in flight finished and was recorded")]
    public static partial void StoppedCleanly(ILogger logger);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "Stopped: {Cut} call(s) were still running at the deadline and were cut off (each recorded as gateway.shutdown)")]
    public static partial void StoppedCuttingOff(ILogger logger, int cut);

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning, Message = "Not ready: {Failures}")]
    public static partial void NotReady(ILogger logger, string failures);

    [LoggerMessage(EventId = 106, Level = LogLevel.Information, Message = "Policy reloaded: {Hash} is in force (was {Previous})")]
    public static partial void PolicyReloaded(ILogger logger, string hash, string previous);

    [LoggerMessage(EventId = 107, Level = LogLevel.Error, Message = "Policy reload refused: {Reason}")]
    public static partial void ReloadRefused(ILogger logger, string reason);

    [LoggerMessage(EventId = 108, Level = LogLevel.Error, Message = "Policy reload failed; the policy in force stays")]
    public static partial void ReloadCrashed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 109, Level = LogLevel.Error, Message = "Policy {Hash} is in force but its audit event could not be recorded")]
    public static partial void ReloadNotRecorded(ILogger logger, Exception exception, string hash);

    [LoggerMessage(EventId = 110, Level = LogLevel.Warning, Message = "The policy file cannot be watched ({Reason}); changes are picked up by reading it every {Seconds} s")]
    public static partial void WatchUnavailable(ILogger logger, string reason, double seconds);

    [LoggerMessage(EventId = 111, Level = LogLevel.Information, Message = "Drained {Pools} connection pool(s) after a {Cause}: new connections log in with the current passwords")]
    public static partial void PoolsDrained(ILogger logger, int pools, string cause);

    [LoggerMessage(EventId = 112, Level = LogLevel.Information, Message = "Connection {Connection}: rotation {Generation} asked for; its pool is drained, new connections log in with the current password")]
    public static partial void PoolRotated(ILogger logger, string connection, long generation);

    [LoggerMessage(EventId = 113, Level = LogLevel.Warning, Message = "Connection rotations cannot be read from the state store ({Reason}); they are carried out once it answers")]
    public static partial void RotationWatchFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 114, Level = LogLevel.Warning, Message = "Admin request {Method} {Path} failed: the state store did not answer ({Reason})")]
    public static partial void AdminStateUnavailable(ILogger logger, string method, string path, string reason);

    [LoggerMessage(EventId = 115, Level = LogLevel.Warning, Message = "{Count} request(s) without a valid token or with a disabled one (to /mcp, or console sign-ins) were answered 429 without an audit record each (the last from {Address}): past {PerSecond} a second from one client, or {TotalPerSecond} from all, they are counted here instead")]
    public static partial void RefusalsUnrecorded(ILogger logger, long count, string address, int perSecond, int totalPerSecond);

    [LoggerMessage(EventId = 116, Level = LogLevel.Warning, Message = "A request to /mcp was answered 503 and not recorded: the state store did not answer, so the gateway could not {What}: {Reason}")]
    public static partial void DoorStateUnavailable(ILogger logger, string what, string reason);
}
