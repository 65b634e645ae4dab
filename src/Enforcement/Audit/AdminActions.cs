namespace Gatehouse.Enforcement.Audit;

/// <summary>An admin's action as one finished audit record: approvals, agent switches and console sign-ins all record alike.</summary>
public static class AdminActions
{
    /// <param name="subject">What the action was about (a request id, an agent name), kept in the classification field.</param>
    public static async Task RecordAsync(
        this IAuditStore audit, DateTimeOffset time, string tool, string channel, string? who, string? subject, bool done, string rule, string reason, CancellationToken cancellationToken)
    {
        var record = new AuditRecord
        {
            Id = AuditRecord.NewId(),
            Time = time,
            Tool = tool,
            Transport = channel,
            Agent = who,
            Classification = subject,
            Decision = done ? Verdict.Allowed : Verdict.Denied,
            Rule = rule,
            Reason = reason,
        };
        await audit.BeginAsync(record, cancellationToken).ConfigureAwait(false);
        await audit.CompleteAsync(record, cancellationToken).ConfigureAwait(false);
    }
}
