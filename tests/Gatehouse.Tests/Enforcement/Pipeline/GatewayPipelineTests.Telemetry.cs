using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gatehouse.Enforcement.Pipeline;

namespace Gatehouse.Tests.Enforcement.Pipeline;

public sealed partial class GatewayPipelineTests
{
    private static readonly ActivitySource TestSource = new("Gatehouse.Tests");

    /// <summary>Runs <paramref name="call"/> under a test span and returns the pipeline's spans in that trace, in the order they ended.</summary>
    private static async Task<List<Activity>> TraceAsync(Func<Task> call)
    {
        var ended = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is GatewayTelemetry.Name or "Gatehouse.Tests",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = ended.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        ActivityTraceId trace;
        using (var root = TestSource.StartActivity("test"))
        {
            trace = root!.TraceId;
            await call();
        }

        // Other tests run in parallel: keep only this trace.
        return ended.Where(a => a.TraceId == trace && a.Source.Name == GatewayTelemetry.Name).ToList();
    }

    [Fact]
    public async Task A_query_is_one_span_with_a_child_span_per_pipeline_stage()
    {
        CallOutcome outcome = null!;
        var spans = await TraceAsync(async () => outcome = await Query("select * from orders"));

        var call = Assert.Single(spans, s => s.OperationName == "gatehouse.query");
        Assert.Equal(outcome.AuditId, call.GetTagItem("gatehouse.audit_id"));
        Assert.Equal("analyst", call.GetTagItem("gatehouse.agent"));
        Assert.Equal("allowed", call.GetTagItem("gatehouse.decision"));
        var stages = spans.Where(s => s.ParentSpanId == call.SpanId).Select(s => s.OperationName).ToList();
        Assert.Equal(
            ["identify", "authorize", "record", "classify", "authorize.plan", "guard", "execute", "mask", "record"],
            stages.Select(s => s["gatehouse.stage.".Length..]));
        // Spans say who and what was decided, never the statement.
        Assert.DoesNotContain(spans.SelectMany(s => s.TagObjects), t => t.Value is string v && v.Contains("orders", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_refused_call_is_counted_with_its_rule()
    {
        var denials = new ConcurrentBag<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == GatewayTelemetry.Name && instrument.Name == "gatehouse.denials")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "rule")
                {
                    denials.Add((string)tag.Value!);
                }
            }
        });
        listener.Start();

        var spans = await TraceAsync(async () => await Query("delete from orders"));
        Assert.Contains("grant.read_only", denials);
        Assert.Equal("denied", Assert.Single(spans, s => s.OperationName == "gatehouse.query").GetTagItem("gatehouse.decision"));
    }
}
