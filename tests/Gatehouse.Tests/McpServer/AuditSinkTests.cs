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

        await Task.WhenAll(
            Task.Run(() => WriteAsync(first, "first")),
            Task.Run(() => WriteAsync(second, "second")));
        first.Dispose();
        second.Dispose();

        var lines = Directory.GetFiles(Path.GetDirectoryName(path)!, "audit*.jsonl").SelectMany(File.ReadAllLines).ToList();
        var agents = lines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("agent").GetString()).ToList();
        Assert.Equal(500, agents.Count(a => a == "first"));
        Assert.Equal(500, agents.Count(a => a == "second"));
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
    }

    private static async Task WriteAsync(AuditSink sink, string agent)
    {
        for (var i = 0; i < 500; i++)
        {
            await sink.CompleteAsync(
                new AuditRecord { Id = AuditRecord.NewId(), Time = DateTimeOffset.UtcNow, Tool = "query", Transport = "stdio", Agent = agent, Decision = Verdict.Allowed, Sql = $"select {i}" },
                CancellationToken.None);
        }
    }
}
