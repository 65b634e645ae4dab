using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Tests.Infrastructure;
using ModelContextProtocol.Protocol;
using Npgsql;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// Two gateway instances behind one policy: each its own HTTP host, pipeline and store handle, all state in one
/// PostgreSQL database (audit log, approvals, agent switches). What one instance decides, the other enforces.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class TwoInstanceTests(PostgresFixture pg) : IAsyncLifetime
{
    private TestGateway _gateway = null!;
    private string _state = null!;
    private HttpGateway _first = null!;
    private HttpGateway _second = null!;

    public async Task InitializeAsync()
    {
        _state = await pg.CreateDatabaseAsync("shared_state");
        _gateway = TestGateway.Create(
            pg,
            GuardrailTests.Agents + "\napprovals:\n  approvers: [alice]\n  wait: 60s\nadmin:\n  audience: gatehouse-admin\n  users: [alice]\n",
            gateway: $"store:\n  postgres: \"{_state}\"");
        _first = await HttpGateway.StartAsync(_gateway);
        _second = await HttpGateway.StartAsync(_gateway);
    }

    public async Task DisposeAsync()
    {
        await _first.DisposeAsync();
        await _second.DisposeAsync();
    }

    [Fact]
    public async Task An_approval_through_one_instance_releases_the_statement_waiting_on_the_other()
    {
        await using var agent = await GatewayClients.HttpAsync(_second.Endpoint, _gateway.Mint("ops-bot"));
        var waiting = agent.QueryAsync("update payments set status = status where id = $1", [21]);

        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _gateway.MintAdmin("alice"));
        var api = new Uri(_first.Endpoint, "/admin/api/");
        string? id = null;
        for (var i = 0; i < 100 && id is null; i++)
        {
            var pending = await http.GetFromJsonAsync<System.Text.Json.JsonElement>(new Uri(api, "requests"));
            id = pending.GetProperty("statements").EnumerateArray().Select(s => s.GetProperty("id").GetString()).FirstOrDefault();
            await Task.Delay(id is null ? 100 : 0);
        }

        Assert.NotNull(id);
        using var approved = await http.PostAsync(new Uri(api, $"requests/{id}/approve"), null);
        Assert.True(approved.IsSuccessStatusCode, await approved.Content.ReadAsStringAsync());

        var result = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual(true, result.IsError);
        Assert.Equal(1, result.Structured().GetProperty("affected_rows").GetInt32());
    }

    [Fact]
    public async Task While_the_shared_store_takes_no_connections_an_agents_request_is_answered_503_not_401_and_then_served_again()
    {
        var database = new NpgsqlConnectionStringBuilder(_state).Database;
        await pg.AdminScalarAsync($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false");
        try
        {
            await pg.AdminScalarAsync($"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}'");

            // Whether the agent is disabled cannot be read once the kept snapshot is half a second old: the door fails
            // closed, as unavailable (a 401 would tell the client to sign in again).
            using var http = new HttpClient();
            var clock = Stopwatch.StartNew();
            HttpResponseMessage response;
            while ((response = await http.SendAsync(GatewayClients.InitializeRequest(_first.Endpoint, _gateway.Mint("analyst")))).StatusCode != HttpStatusCode.ServiceUnavailable)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the door still answered {response.StatusCode} 5 s after the store stopped taking connections");
                response.Dispose();
                await Task.Delay(50);
            }

            using (response)
            {
                Assert.Equal(TimeSpan.FromSeconds(5), response.Headers.RetryAfter?.Delta);
                var body = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
                Assert.Equal("state.unavailable", body.GetProperty("error").GetString());
                Assert.StartsWith("The state store did not answer, so the gateway could not read whether this agent has been disabled.", body.GetProperty("error_description").GetString());
            }
        }
        finally
        {
            await pg.AdminScalarAsync($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true");
        }

        var back = Stopwatch.StartNew();
        HttpStatusCode status;
        while ((status = (await GatewayClients.KnockAsync(_first.Endpoint, _gateway.Mint("analyst"))).Status) != HttpStatusCode.OK)
        {
            Assert.True(back.Elapsed < TimeSpan.FromSeconds(5), $"the door still answered {status} 5 s after the store took connections again");
            await Task.Delay(50);
        }

        await using var agent = await GatewayClients.HttpAsync(_first.Endpoint, _gateway.Mint("analyst"));
        Assert.NotEqual(true, (await agent.QueryAsync("select 1")).IsError);
    }

    [Fact]
    public async Task While_the_shared_store_takes_no_connections_the_admin_api_says_so_and_it_answers_again_once_it_does()
    {
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _gateway.MintAdmin("alice"));
        var requests = new Uri(_first.Endpoint, "/admin/api/requests");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(requests)).StatusCode);

        var database = new NpgsqlConnectionStringBuilder(_state).Database;
        await pg.AdminScalarAsync($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false");
        try
        {
            await pg.AdminScalarAsync($"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}'");

            // Past the age at which the kept snapshot of the switches is no longer used, every request reads whether its
            // admin was disabled from the store itself (that failure went out as a bare 500), and so does a sign-in.
            await Task.Delay(StateSnapshots.MaxAge * 3);
            foreach (var request in new[] { new HttpRequestMessage(HttpMethod.Get, requests), new HttpRequestMessage(HttpMethod.Post, new Uri(requests, "requests/apr_0/approve")) })
            {
                using var refused = await http.SendAsync(request);
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                var error = (await refused.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("error").GetString();
                Assert.StartsWith("the gateway's state store did not answer", error);
                Assert.Equal(TimeSpan.FromSeconds(5), refused.Headers.RetryAfter?.Delta);
            }

            using var signIn = new HttpRequestMessage(HttpMethod.Post, new Uri(_first.Endpoint, "/admin/login")) { Content = new FormUrlEncodedContent([new("token", _gateway.MintAdmin("alice"))]) };
            using var notSignedIn = await new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }).SendAsync(signIn);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notSignedIn.StatusCode);
            Assert.Contains("state store did not answer", await notSignedIn.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.False(notSignedIn.Headers.Contains("Set-Cookie"));
        }
        finally
        {
            await pg.AdminScalarAsync($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true");
        }

        // No restart: the same instance answers once the store does.
        var back = Stopwatch.StartNew();
        HttpStatusCode status;
        while ((status = (await http.GetAsync(requests)).StatusCode) != HttpStatusCode.OK)
        {
            Assert.True(back.Elapsed < TimeSpan.FromSeconds(5), $"the admin API still answered {status} 5 s after the store took connections again");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task A_revocation_on_one_instance_is_enforced_by_both_and_the_shared_audit_chain_verifies()
    {
        await using var open = await GatewayClients.HttpAsync(_second.Endpoint, _gateway.Mint("analyst"));
        Assert.NotEqual(true, (await open.QueryAsync("select 1")).IsError);

        // The instance an admin disables an agent through refuses its next call; the other within a second.
        await _first.Gateway.Store.SetDisabledAsync("analyst", true, "alice", CancellationToken.None);
        var disabledAt = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.Unauthorized, (await GatewayClients.KnockAsync(_first.Endpoint, _gateway.Mint("analyst"))).Status);

        // The session the agent opened on the other instance before is refused there within a second.
        CallToolResult refused;
        while (true)
        {
            var began = disabledAt.Elapsed;
            if ((refused = await open.QueryAsync("select 1")).IsError == true)
            {
                break;
            }

            Assert.True(began < TimeSpan.FromSeconds(1), "the other instance still ran a call the disabled agent made more than a second later");
            await Task.Delay(10);
        }

        Assert.Equal("identity.agent_disabled", refused.Rule());

        var (status, challenge) = await GatewayClients.KnockAsync(_second.Endpoint, _gateway.Mint("analyst"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("agent 'analyst' has been disabled by an admin", challenge);

        // Both instances wrote to one chain; it verifies whole.
        await using (var ops1 = await GatewayClients.HttpAsync(_first.Endpoint, _gateway.Mint("ops-bot")))
        await using (var ops2 = await GatewayClients.HttpAsync(_second.Endpoint, _gateway.Mint("ops-bot")))
        {
            await Task.WhenAll(Enumerable.Range(0, 10).Select(i => (i % 2 == 0 ? ops1 : ops2).QueryAsync("select count(*) from orders")));
        }

        var report = await _first.Gateway.Audit.VerifyChainAsync(null, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        var agents = (await _second.Gateway.Audit.ListAsync(new AuditQuery(Limit: 1000), CancellationToken.None)).Select(r => r.Agent).ToHashSet();
        Assert.Contains("analyst", agents);
        Assert.Contains("ops-bot", agents);
    }
}
