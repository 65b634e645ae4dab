using Gatehouse.Enforcement.Pipeline;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Gatehouse.McpServer.Hosting;

/// <summary>OpenTelemetry export of the pipeline's spans and metrics over OTLP/HTTP, set up only when the policy names an endpoint.</summary>
public static class TelemetrySetup
{
    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, string serviceName, Uri endpoint)
    {
        // OTLP/HTTP paths go under the collector's base URL, whatever path it already has.
        var baseUrl = endpoint.ToString().TrimEnd('/');
        var traces = new Uri(baseUrl + "/v1/traces");
        var metrics = new Uri(baseUrl + "/v1/metrics");
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName, serviceVersion: typeof(TelemetrySetup).Assembly.GetName().Version?.ToString(3)))
            .WithTracing(t => t
                .AddSource(GatewayTelemetry.Name)
                .AddOtlpExporter(o =>
                {
                    o.Protocol = OtlpExportProtocol.HttpProtobuf;
                    o.Endpoint = traces;
                    // Batches leave within a second or two: traces stay near-live without one request per span.
                    o.BatchExportProcessorOptions = new BatchExportProcessorOptions<System.Diagnostics.Activity> { ScheduledDelayMilliseconds = 1000 };
                }))
            .WithMetrics(m => m
                .AddMeter(GatewayTelemetry.Name)
                .AddOtlpExporter((o, reader) =>
                {
                    o.Protocol = OtlpExportProtocol.HttpProtobuf;
                    o.Endpoint = metrics;
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = 5000;
                }));
        return services;
    }
}
