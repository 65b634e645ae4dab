namespace Gatehouse.McpServer.Hosting;

/// <summary>The host's log messages, source-generated and gathered in one place.</summary>
internal static partial class HostLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Audit retention purged {Purged} record(s) through chain link {ThroughSeq}; a signed checkpoint keeps the rest verifiable")]
    public static partial void RetentionPurged(ILogger logger, int purged, long throughSeq);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Audit retention could not purge this round; it tries again at the next")]
    public static partial void RetentionFailed(ILogger logger, Exception exception);
}
