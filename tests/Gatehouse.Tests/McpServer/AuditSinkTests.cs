using System.Text.Json;
using Gatehouse.Enforcement.Audit;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Enforcement.Pipeline;

namespace Gatehouse.Tests.McpServer;

/// <summary>The live JSON-lines sink, as several gateway processes sharing one policy file write it.</summary>
public sealed class AuditSinkTests
{
    [Fact]
    public async Task Two_gateways_writing_one_sink_file_each_leave_every_line_whole()
    {
        // Two stdio processes on one policy share the sink file; each had its own write offset and wrote over the other.
        var path = Path.Combine(Path.GetTempPath(), $"gatehouse-sink-{Guid.NewGuid():N}", "audit.jsonl");
        using var first = AuditSink.ToFile(new MemoryAuditStore(), path);
        using var second = AuditSink.ToFile(new MemoryAuditStore(), path);

        // Turn about, so each has opened the file before the other writes again: a writer that kept its own offset would
        // write over the line the other just added.
        for (var i = 0; i < 200; i++)
        {
            await WriteAsync(first, "first", i);
            await WriteAsync(second, "second", i);
        }

        first.Dispose();
        second.Dispose();

        var lines = Directory.GetFiles(Path.GetDirectoryName(path)!, "audit*.jsonl").SelectMany(File.ReadAllLines).ToList();
        var agents = lines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("agent").GetString()).ToList();
        Assert.Equal(200, agents.Count(a => a == "first"));
        Assert.Equal(200, agents.Count(a => a == "second"));
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
    }

    private static ValueTask WriteAsync(AuditSink sink, string agent, int i) =>
        sink.CompleteAsync(
            new AuditRecord { Id = AuditRecord.NewId(), Time = DateTimeOffset.UtcNow, Tool = "query", Transport = "stdio", Agent = agent, Decision = Verdict.Allowed, Sql = $"select {i}" },
            CancellationToken.None);
}
