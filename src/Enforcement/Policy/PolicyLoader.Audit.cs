using Gatehouse.Enforcement.Audit;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Reading <c>gateway.store</c>, <c>gateway.audit</c> (retention, sink, capture bound) and <c>gateway.telemetry</c>.</summary>
public static partial class PolicyLoader
{
    private static StoreSettings ReadStore(YamlNodeReader reader, YamlNode node, string baseDir)
    {
        const string what = "gateway.store";
        var e = reader.Mapping(node, what, "postgres", "password_env", "password_file");
        var connectionString = reader.String(e, "postgres", $"{what}: postgres", requiredAt: node);
        if (connectionString is not null && !IsSafeConnectionString(connectionString, out var problem))
        {
            reader.Error(e["postgres"], $"{what}: {problem}");
        }

        return new StoreSettings(connectionString, ReadSecret(reader, e, node, what, baseDir));
    }

    private static AuditSettings ReadAudit(YamlNodeReader reader, YamlNode node, string baseDir)
    {
        const string what = "gateway.audit";
        var e = reader.Mapping(node, what, "retention", "sink", "max_capture_bytes", "durability");
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
        var durability = reader.String(e, "durability", $"{what}: durability") switch
        {
            null or "power_loss" => AuditDurability.PowerLoss,
            "process_crash" => AuditDurability.ProcessCrash,
            var other => Unknown(other),
        };
        return new AuditSettings(
            retention,
            sink is null ? null : Path.GetFullPath(sink, baseDir),
            e.TryGetValue("max_capture_bytes", out var bound) ? reader.Int(bound, $"{what}: max_capture_bytes", 256, 16 * 1024 * 1024) : AuditSettings.Default.MaxCaptureBytes)
        {
            Durability = durability,
        };

        AuditDurability Unknown(string value)
        {
            reader.Error(e["durability"], $"{what}: durability '{value}' is not known; use power_loss (the default: every record is on disk before its call goes on) or process_crash (records survive the gateway crashing, not the machine losing power).");
            return AuditDurability.PowerLoss;
        }
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
