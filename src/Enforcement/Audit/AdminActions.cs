namespace Gatehouse.Enforcement.Audit;

/// <summary>An admin's action as one finished audit record: approvals, agent switches and console sign-ins all record alike.</summary>
public static class AdminActions
{
    /// <summary>A purge is an action too: who removed how many records, through which link, with the checkpoint left behind.</summary>
    public static Task RecordPurgeAsync(this IAuditStore audit, DateTimeOffset time, string channel, string who, ChainCheckpoint checkpoint) =>
        audit.RecordAsync(
            time, "audit purge", channel, who, $"through chain link {checkpoint.ThroughSeq}", done: true, "audit.purged",
            $"Purged {checkpoint.Purged} record(s) through chain link {checkpoint.ThroughSeq}; the signed checkpoint keeps the rest verifiable.");

    /// <summary>
    /// Records the action as a call does: started, then finished and sealed. Not cancellable: the action has happened (or been
    /// refused) whether or not its caller is still there, and a started record left behind stays an open call, never a
    /// finished record without its seal (which <c>audit verify</c> reports as inserted around the gateway).
    /// </summary>
    /// <param name="subject">What the action was about (a request id, an agent name), kept in the classification field.</param>
    public static async Task RecordAsync(
        this IAuditStore audit, DateTimeOffset time, string tool, string channel, string? who, string? subject, bool done, string rule, string reason)
    {
        var started = new AuditRecord
        {
            Id = AuditRecord.NewId(),
            Time = time,
            Tool = tool,
            Transport = channel,
            Agent = who,
            Classification = subject,
        };
        await audit.BeginAsync(started, CancellationToken.None).ConfigureAwait(false);
        await audit.CompleteAsync(started with { Decision = done ? Verdict.Allowed : Verdict.Denied, Rule = rule, Reason = reason }, CancellationToken.None).ConfigureAwait(false);
    }
}
