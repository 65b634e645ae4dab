using Gatehouse.Enforcement.Audit;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Reading <c>gateway.audit</c> (store, retention, sink, capture bound) and <c>gateway.telemetry</c>.</summary>
public static partial class PolicyLoader
{
    private static AuditSettings ReadAudit(YamlNodeReader reader, YamlNode node, string baseDir)
    {
        const string what = "gateway.audit";
        var e = reader.Mapping(node, what, "store", "connection_string", "password_env", "password_file", "retention", "sink", "max_capture_bytes");
        var store = reader.String(e, "store", $"{what}: store") ?? "sqlite";
        string? connectionString = null;
        switch (store)
        {
            case "sqlite":
                if (e.ContainsKey("connection_string"))
                {
                    reader.Error(e["connection_string"], $"{what}: connection_string applies only to store: postgres.");
                }

                break;
            case "postgres":
                connectionString = reader.String(e, "connection_string", $"{what}: connection_string", requiredAt: node);
                if (connectionString is not null && !IsSafeConnectionString(connectionString, out var problem))
                {
                    reader.Error(e["connection_string"], $"{what}: {problem}");
                }

                break;
            default:
                reader.Error(e["store"], $"{what}: store '{store}' is not known; use sqlite (the embedded state file) or postgres (shared by several gateway instances).");
                break;
        }

        var retention = AuditRetention.None;
        if (e.TryGetValue("retention", out var retentionNode))
        {
            var r = reader.Mapping(retentionNode, $"{what}.retention", "max_age", "max_records", "every");
            retention = new AuditRetention(
                r.TryGetValue("max_age", out var age) ? reader.Duration(age, $"{what}.retention.max_age", TimeSpan.FromHours(1), TimeSpan.FromDays(36500)) : null,
                r.TryGetValue("max_records", out var records) ? reader.Int(records, $"{what}.retention.max_records", 1000, int.MaxValue) : null,
                r.TryGetValue("every", out var every) ? reader.Duration(every, $"{what}.retention.every", TimeSpan.FromSeconds(1), TimeSpan.FromDays(1)) : retention.Every);
            if (!retention.Enabled)
            {
                reader.Error(retentionNode, $"{what}.retention: set max_age, max_records or both (an empty retention would purge nothing).");
            }
        }

        var sink = reader.String(e, "sink", $"{what}: sink");
        return new AuditSettings(
            connectionString,
            ReadSecret(reader, e, node, what, baseDir),
            retention,
            sink is null ? null : Path.GetFullPath(sink, baseDir),
            e.TryGetValue("max_capture_bytes", out var bound) ? reader.Int(bound, $"{what}: max_capture_bytes", 256, 16 * 1024 * 1024) : AuditSettings.Default.MaxCaptureBytes);
    }

    private static TelemetrySettings ReadTelemetry(YamlNodeReader reader, YamlNode node)
    {
        const string what = "gateway.telemetry";
        var e = reader.Mapping(node, what, "otlp_endpoint", "service_name");
        var endpoint = reader.String(e, "otlp_endpoint", $"{what}: otlp_endpoint");
        Uri? uri = null;
        if (endpoint is not null && (!Uri.TryCreate(endpoint, UriKind.Absolute, out uri) || uri.Scheme is not ("http" or "https")))
        {
            reader.Error(e["otlp_endpoint"], $"{what}: otlp_endpoint must be an http:// or https:// URL, e.g. http://localhost:4318.");
            uri = null;
        }

        return new TelemetrySettings(uri, reader.String(e, "service_name", $"{what}: service_name") ?? "gatehouse");
    }
}
