using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Policy;

/// <summary>Which policy changes a running gateway takes up, and which it refuses until a restart.</summary>
public sealed class LivePolicyTests
{
    private static GatewayPolicy Parse(string connectionString = "Host=db;Database=shop;Username=gw", string issuer = "https://id.example", string agent = "analyst", string? extra = null) =>
        PolicyLoader.Parse(
            $"""
            connections:
              shop:
                connection_string: "{connectionString}"
                password_file: shop.password
            issuers:
              - issuer: {issuer}
                audience: gatehouse
                jwks_url: {issuer}/jwks
            agents:
              {agent}:
                grants:
                  - connection: shop
                    access: read
                    schemas: [public]
            {extra}
            """,
            "/etc/gatehouse/gatehouse.yaml");

    [Fact]
    public void Rule_changes_take_effect()
    {
        var live = new LivePolicy(Parse());
        var next = Parse(agent: "reporter", extra: "guardrails:\n  - id: no-deletes\n    match: { kinds: [delete] }\n    outcome: deny");

        Assert.Empty(live.TryReplace(next));
        Assert.Same(next, live.Current);
    }

    [Theory]
    [InlineData("connection", "connections.shop")]
    [InlineData("issuer", "issuers")]
    [InlineData("store", "gateway.store")]
    [InlineData("proxies", "gateway.http")]
    public void Settings_bound_at_start_are_refused_and_the_old_policy_stays(string change, string named)
    {
        var first = Parse();
        var live = new LivePolicy(first);
        var next = change switch
        {
            "connection" => Parse(connectionString: "Host=other;Database=shop;Username=gw"),
            "issuer" => Parse(issuer: "https://other.example"),
            "proxies" => Parse(extra: "gateway:\n  http:\n    trusted_proxies: [10.0.0.5, \"fd00:10::/32\"]"),
            _ => Parse(extra: "gateway:\n  store:\n    postgres: \"Host=state;Database=gatehouse;Username=gw\""),
        };

        var refused = live.TryReplace(next);

        Assert.Contains(refused, r => r.StartsWith(named, StringComparison.Ordinal));
        Assert.Same(first, live.Current);
    }

    [Fact]
    public void Adding_a_connection_needs_a_restart()
    {
        var first = Parse();
        var withTwo = PolicyLoader.Parse(
            """
            connections:
              shop:
                connection_string: "Host=db;Database=shop;Username=gw"
                password_file: shop.password
              crm:
                connection_string: "Host=db;Database=crm;Username=gw"
            issuers:
              - issuer: https://id.example
                audience: gatehouse
                jwks_url: https://id.example/jwks
            """,
            "/etc/gatehouse/gatehouse.yaml");

        Assert.Equal(["connections.crm (its address, login, password source, TLS or search_path; or the connection was added or removed)"], LivePolicy.NeedingRestart(first, withTwo));
    }

    [Fact]
    public void The_same_trusted_proxies_read_again_are_no_change()
    {
        const string proxies = "gateway:\n  http:\n    trusted_proxies: [10.0.0.5, \"fd00:10::/32\"]";
        Assert.Empty(LivePolicy.NeedingRestart(Parse(extra: proxies), Parse(extra: proxies)));
        Assert.Equal(["gateway.http"], LivePolicy.NeedingRestart(Parse(extra: proxies), Parse(extra: proxies.Replace("10.0.0.5", "10.0.0.6", StringComparison.Ordinal))));
    }
}
