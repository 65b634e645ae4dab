using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;
using Microsoft.IdentityModel.JsonWebTokens;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>Agents with tokens from a real OIDC provider (oidc-provider on loopback): discovery, JWKS, rotation and outages.</summary>
[Collection(PostgresCollection.Name)]
public sealed class OidcProviderTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Resource = "api://gatehouse-test";

    private OidcProvider _idp = null!;
    private TestGateway _gateway = null!;
    private HttpGateway _server = null!;

    public async Task InitializeAsync()
    {
        _idp = await OidcProvider.StartAsync(Resource);
        _gateway = TestGateway.Create(
            pg,
            """
            agents:
              agent-a:
                grants:
                  - { connection: shop, access: read, schemas: [public] }
              agent-b:
                grants:
                  - { connection: shop, access: read, tables: [public.orders] }
            groups:
              readers:
                grants:
                  - { connection: shop, access: read, schemas: [public] }
            """,
            issuers: $"""
            - issuer: {_idp.Issuer}
              audience: {Resource}
              discovery: {_idp.Issuer}/.well-known/openid-configuration
              require_type: at+jwt
              required_scopes: [gatehouse.query]
              key_refresh_interval: 1s
              agents: [agent-a, agent-b]
              groups: any
            """,
            devIssuer: "agents: [ci-bot]\ngroups: []");
        _server = await HttpGateway.StartAsync(_gateway);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _idp.DisposeAsync();
    }

    private async Task<Gatehouse.Enforcement.Audit.AuditRecord> QueryAsAsync(string token, string sql = "select count(*) from orders")
    {
        await using var client = await GatewayClients.HttpAsync(_server.Endpoint, token);
        var result = await client.QueryAsync(sql);
        return (await _server.Gateway.Audit.GetAsync(result.AuditId(), CancellationToken.None))!;
    }

    [Fact]
    public async Task Two_agents_with_provider_tokens_are_attributed_separately()
    {
        var a = await QueryAsAsync(await _idp.TokenAsync("agent-a"));
        var b = await QueryAsAsync(await _idp.TokenAsync("agent-b"));
        Assert.Equal((Verdict.Allowed, "agent-a", _idp.Issuer, "agent-a"), (a.Decision, a.Agent, a.Issuer, a.ClientId));
        Assert.Equal((Verdict.Allowed, "agent-b", _idp.Issuer, "agent-b"), (b.Decision, b.Agent, b.Issuer, b.ClientId));

        // agent-b may read orders only.
        var refused = await QueryAsAsync(await _idp.TokenAsync("agent-b"), "select count(*) from customers");
        Assert.Equal((Verdict.Denied, "agent-b"), (refused.Decision, refused.Agent));
    }

    [Fact]
    public async Task With_two_issuers_trusted_each_names_only_its_own_agents_and_groups()
    {
        // The dev issuer, trusted here too, may name ci-bot only: a token it signs for the provider's agent is refused.
        var forged = await Assert.ThrowsAsync<HttpRequestException>(() => GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("agent-a")));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, forged.StatusCode);
        var refusals = await _server.Gateway.Audit.ListAsync(new AuditQuery(Decision: Verdict.Denied, Tool: "http.connect"), CancellationToken.None);
        Assert.Contains(refusals, r => r.Rule == "identity.agent_not_from_issuer" && r.Reason.Contains("'agent-a'", StringComparison.Ordinal));

        // Nor may it put anyone in a group: ci-bot's claim to 'readers' is ignored, so it has no grant.
        var grouped = await QueryAsAsync(_gateway.Mint("ci-bot", ["readers"]), "select count(*) from customers");
        Assert.Equal((Verdict.Denied, "ci-bot"), (grouped.Decision, grouped.Agent));
        Assert.Empty(grouped.Groups);
    }

    [Fact]
    public async Task A_key_rotation_at_the_provider_is_picked_up_without_a_restart_and_an_outage_keeps_known_keys_working()
    {
        Assert.Equal(Verdict.Allowed, (await QueryAsAsync(await _idp.TokenAsync("agent-a"))).Decision);
        var firstKey = _idp.SigningKeyId;

        await _idp.StopAsync();
        await _idp.StartAsync(rotate: true);
        Assert.NotEqual(firstKey, _idp.SigningKeyId);
        var rotated = await _idp.TokenAsync("agent-a");
        Assert.Equal(_idp.SigningKeyId, new JsonWebToken(rotated).Kid);
        var spare = await _idp.TokenAsync("agent-b");
        // Unknown-kid refreshes are rate-limited (key_refresh_interval: 1s).
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        var afterRotation = await QueryAsAsync(rotated);
        Assert.True(afterRotation.Decision == Verdict.Allowed, $"{afterRotation.Rule}: {afterRotation.Reason}");

        // The provider goes away: a token signed with a key the gateway already fetched still verifies.
        await _idp.StopAsync();
        var duringOutage = await QueryAsAsync(spare);
        Assert.True(duringOutage.Decision == Verdict.Allowed, $"{duringOutage.Rule}: {duringOutage.Reason}");
    }

    [Fact]
    public async Task A_provider_token_for_another_resource_or_without_the_scope_is_refused_at_the_door_and_recorded()
    {
        foreach (var (token, rule) in new[]
        {
            (await _idp.TokenAsync("agent-a", resource: "api://someone-else"), "identity.wrong_audience"),
            (await _idp.TokenAsync("agent-a", scope: "gatehouse.read"), "identity.insufficient_scope"),
        })
        {
            var refused = await Assert.ThrowsAsync<HttpRequestException>(() => GatewayClients.HttpAsync(_server.Endpoint, token));
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, refused.StatusCode);
            var records = await _server.Gateway.Audit.ListAsync(new AuditQuery(Decision: Verdict.Denied, Tool: "http.connect"), CancellationToken.None);
            Assert.Contains(records, r => r.Rule == rule);
        }
    }
}
