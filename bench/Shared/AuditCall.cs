using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Benchmarks;

/// <summary>The audit writes of one point query, as the gateway makes them: the started record, stored before the statement
/// runs, then the finished record, durable before the result leaves.</summary>
internal static class AuditCall
{
    public static async Task RecordAsync(IAuditStore store, string tool = "query")
    {
        var started = Started(tool);
        await store.BeginAsync(started, CancellationToken.None);
        await store.CompleteAsync(Finished(started), CancellationToken.None);
    }

    /// <summary>The started record of a point query, with the caller's identity as the gateway records it.</summary>
    public static AuditRecord Started(string tool = "query") => new()
    {
        Id = AuditRecord.NewId(),
        Time = DateTimeOffset.UtcNow,
        Tool = tool,
        Transport = "stdio",
        SessionId = "stdio-0123456789ab",
        Agent = "analyst",
        Groups = ["analysts"],
        Issuer = "gatehouse-dev",
        Subject = "analyst",
        TokenId = "6f1c2a9e",
        Connection = "shop",
        Sql = "select id, status, total from orders where id = 42",
    };

    /// <summary>The same call finished: allowed, classified, one row.</summary>
    public static AuditRecord Finished(AuditRecord started) => started with
    {
        Classification = "select: public.orders(read)",
        Decision = Verdict.Allowed,
        Rule = "grant.read",
        Reason = "read on public.orders granted to analyst",
        RowCount = 1,
        DurationMs = 1.5,
    };
}
