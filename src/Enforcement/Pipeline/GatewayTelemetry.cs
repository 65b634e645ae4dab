using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Enforcement.Pipeline;

/// <summary>
/// Traces and metrics of the pipeline, in the BCL's own types so Enforcement needs no exporter: a span per tool call with a
/// child per stage, and counters and a latency histogram. Nothing is collected unless the host attaches a listener
/// (OpenTelemetry, when <c>gateway.telemetry</c> is configured). Spans carry who and what was decided, never SQL or values.
/// </summary>
public static class GatewayTelemetry
{
    public const string Name = "Gatehouse";

    // The .NET pattern: one source and one meter per component, listened to from outside.
    public static readonly ActivitySource Source = new(Name);

    private static readonly Meter Meter = new(Name);

    private static readonly Counter<long> Calls = Meter.CreateCounter<long>("gatehouse.calls", "{call}", "Tool calls, by tool and decision");

    private static readonly Counter<long> Denials = Meter.CreateCounter<long>("gatehouse.denials", "{call}", "Refused tool calls, by rule");

    private static readonly Counter<long> Approvals = Meter.CreateCounter<long>("gatehouse.approvals", "{request}", "Statements held for a human decision");

    private static readonly Histogram<double> Latency = Meter.CreateHistogram<double>("gatehouse.call.duration", "ms", "Tool call latency, recording included");

    /// <summary>Starts the span of one tool call (null when nobody listens).</summary>
    public static Activity? StartCall(string tool) => Source.HasListeners() ? Source.StartActivity($"gatehouse.{tool}", ActivityKind.Server) : null;

    /// <summary>Starts a child span for one pipeline stage; dispose it when the stage ends.</summary>
    /// <remarks>The span's name is built only when someone listens: calls pass here about ten times each.</remarks>
    public static Activity? Stage(string stage) => Source.HasListeners() ? Source.StartActivity($"gatehouse.stage.{stage}") : null;

    public static void ApprovalRequested() => Approvals.Add(1);

    /// <summary>Closes the call: tags the span with the outcome and counts it.</summary>
    public static void Finish(Activity? call, AuditRecord record)
    {
        var tool = new KeyValuePair<string, object?>("tool", record.Tool);
        var decision = new KeyValuePair<string, object?>("decision", record.Decision.ToString().ToLowerInvariant());
        Calls.Add(1, tool, decision);
        Latency.Record(record.DurationMs, tool, decision);
        if (record.Decision == Verdict.Denied)
        {
            Denials.Add(1, new KeyValuePair<string, object?>("rule", record.Rule));
        }

        if (call is null)
        {
            return;
        }

        call.SetTag("gatehouse.audit_id", record.Id);
        call.SetTag("gatehouse.agent", record.Agent);
        call.SetTag("gatehouse.connection", record.Connection);
        call.SetTag("gatehouse.decision", decision.Value);
        call.SetTag("gatehouse.rule", record.Rule);
        call.SetTag("gatehouse.rows", record.RowCount);
        call.SetStatus(record.Decision == Verdict.Failed ? ActivityStatusCode.Error : ActivityStatusCode.Ok);
    }
}
