using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Policy;

public sealed class AuditPolicyTests
{
    // The smallest valid policy: one connection, the dev issuer, one agent.
    private const string Connections = PolicyLoaderTests.Minimal;

    private static GatewayPolicy Parse(string yaml) => PolicyLoaderTests.Parse(yaml);

    private static IReadOnlyList<string> Errors(string yaml) => PolicyLoaderTests.Errors(yaml);

    [Fact]
    public void Without_an_audit_section_records_stay_in_the_state_file_at_metadata_level_and_telemetry_is_off()
    {
        var policy = Parse(Connections);
        Assert.Null(policy.Gateway.Store.PostgresConnectionString);
        Assert.False(policy.Gateway.Audit.Retention.Enabled);
        Assert.Null(policy.Gateway.Audit.Sink);
        Assert.Null(policy.Gateway.Telemetry.OtlpEndpoint);
        Assert.Equal(CaptureLevel.Metadata, policy.Connections["shop"].Capture);
    }

    [Fact]
    public void The_audit_section_reads_store_retention_sink_capture_and_telemetry()
    {
        var policy = Parse("""
            gateway:
              store:
                postgres: "Host=db;Database=gatehouse_state;Username=gh_state"
                password_file: secrets/state.password
              audit:
                retention:
                  max_age: 90d
                  max_records: 5000000
                  every: 30m
                sink: logs/audit.jsonl
                max_capture_bytes: 8192
              telemetry:
                otlp_endpoint: http://localhost:4318
            """ + "\n" + Connections.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    capture: full"));
        var audit = policy.Gateway.Audit;
        Assert.Equal("Host=db;Database=gatehouse_state;Username=gh_state", policy.Gateway.Store.PostgresConnectionString);
        Assert.Equal("/etc/gatehouse/secrets/state.password", policy.Gateway.Store.Password.FilePath);
        Assert.Equal(new AuditRetention(TimeSpan.FromDays(90), 5_000_000, TimeSpan.FromMinutes(30)), audit.Retention);
        Assert.Equal("/etc/gatehouse/logs/audit.jsonl", audit.Sink);
        Assert.Equal(8192, audit.MaxCaptureBytes);
        Assert.Equal(new Uri("http://localhost:4318"), policy.Gateway.Telemetry.OtlpEndpoint);
        Assert.Equal(CaptureLevel.Full, policy.Connections["shop"].Capture);
    }

    [Theory]
    [InlineData("store:\n    mysql: \"Host=db\"", "unknown key 'mysql' in gateway.store")]
    [InlineData("store:\n    password_env: X", "gateway.store: postgres is missing")]
    [InlineData("store:\n    postgres: \"Host=db;Password=hunter2\"", "must not contain a password")]
    [InlineData("audit:\n    retention:\n      every: 1h", "set max_age, max_records or both")]
    [InlineData("audit:\n    retention:\n      max_age: 5m", "max_age must be a duration from 1h")]
    [InlineData("audit:\n    retention:\n      max_records: 10", "max_records must be a whole number from 1000")]
    [InlineData("audit:\n    max_capture_bytes: 10", "max_capture_bytes must be a whole number from 256")]
    [InlineData("audit:\n    retain: forever", "retain")]
    [InlineData("telemetry:\n    otlp_endpoint: localhost:4318", "otlp_endpoint must be an http:// or https:// URL")]
    public void Bad_audit_settings_are_errors_that_say_what_to_write(string section, string message) =>
        Assert.Contains(Errors("gateway:\n  " + section + "\n" + Connections), e => e.Contains(message, StringComparison.Ordinal));

    [Fact]
    public void An_unknown_capture_level_is_an_error() =>
        Assert.Contains(
            Errors(Connections.Replace("    password_env: SHOP_PW", "    password_env: SHOP_PW\n    capture: everything")),
            e => e.Contains("capture 'everything' is not known; use metadata", StringComparison.Ordinal));
}
