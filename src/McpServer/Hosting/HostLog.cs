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
}
