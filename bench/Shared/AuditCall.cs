using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Benchmarks;

/// <summary>The audit writes of one point query, as the gateway makes them: the started record, stored before the statement
/// runs, then the finished record, durable before the result leaves.</summary>
internal static class AuditCall
{
    public static async Task RecordAsync(IAuditStore store, string tool = "query")
    {
        var started = new AuditRecord
        {
            Id = AuditRecord.NewId(),
            Time = DateTimeOffset.UtcNow,
            Tool = tool,
            Transport = "stdio",
            Agent = "analyst",
            Connection = "shop",
            Sql = "select id, status, total from orders where id = 42",
        };
        await store.BeginAsync(started, CancellationToken.None);
        await store.CompleteAsync(started with { Decision = Verdict.Allowed, Rule = "grant.read", RowCount = 1, DurationMs = 1.5 }, CancellationToken.None);
    }
}
