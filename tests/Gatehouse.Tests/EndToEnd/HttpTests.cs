using System.Net;
using System.Text.Json;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>The gateway over Streamable HTTP on loopback, driven by the SDK's McpClient and by plain HTTP for the refusals.</summary>
[Collection(PostgresCollection.Name)]
public sealed class HttpTests(PostgresFixture pg) : IAsyncLifetime
{
    private readonly TestGateway _gateway = TestGateway.Create(pg);
    private readonly HttpClient _http = new();
    private HttpGateway _server = null!;

    public async Task InitializeAsync() => _server = await HttpGateway.StartAsync(_gateway);

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task A_request_without_a_token_gets_401_pointing_at_the_resource_metadata_and_is_recorded()
    {
        using var response = await _http.SendAsync(GatewayClients.InitializeRequest(_server.Endpoint));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var challenge = response.Headers.WwwAuthenticate.ToString();
        Assert.Contains("resource_metadata=", challenge);

        var metadataUrl = challenge[(challenge.IndexOf("resource_metadata=\"", StringComparison.Ordinal) + 19)..].TrimEnd('"');
        using var metadata = JsonDocument.Parse(await _http.GetStringAsync(metadataUrl));
        Assert.Equal(_server.Endpoint.ToString(), metadata.RootElement.GetProperty("resource").GetString());

        var denied = await _server.State.ListAsync(new AuditQuery(Decision: Verdict.Denied), CancellationToken.None);
        Assert.Contains(denied, r => r.Rule == "identity.missing_token" && r.Transport == "http");
    }

    /// <summary>
    /// Sends waves of 100 requests at once until one is answered 429 (with Retry-After: 1); every other answer must be
    /// <paramref name="admitted"/>, and as many as the refusal rates allow in the time taken. Returns how many were admitted.
    /// </summary>
    private async Task<int> FloodAsync(Func<HttpRequestMessage> request, HttpStatusCode admitted)
    {
        var started = DateTime.UtcNow;
        var statuses = new List<HttpStatusCode>();
        for (var wave = 0; wave < 20 && !statuses.Contains(HttpStatusCode.TooManyRequests); wave++)
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => _http.SendAsync(request())));
            statuses.AddRange(responses.Select(r => r.StatusCode));
            Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests), r => Assert.Equal("1", r.Headers.GetValues("Retry-After").Single()));
            Array.ForEach(responses, r => r.Dispose());
        }

        var elapsed = (DateTime.UtcNow - started).TotalSeconds;
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.All(statuses, s => Assert.True(s == admitted || s == HttpStatusCode.TooManyRequests, $"{s}"));
        var count = statuses.Count(s => s == admitted);
        Assert.InRange(count, Gatehouse.McpServer.Hosting.RefusalRecorder.Burst, Gatehouse.McpServer.Hosting.RefusalRecorder.Burst + (Gatehouse.McpServer.Hosting.RefusalRecorder.PerSecond * (elapsed + 1)));
        return count;
    }

    [Fact]
    public async Task A_flood_of_requests_without_a_token_is_recorded_up_to_a_rate_and_answered_429_past_it()
    {
        var answered401 = await FloodAsync(() => GatewayClients.InitializeRequest(_server.Endpoint), HttpStatusCode.Unauthorized);

        // Each request answered 401 has its record, and a caller with a token is not held back by the flood.
        var recorded = await _server.State.ListAsync(new AuditQuery(Decision: Verdict.Denied, Limit: 10_000), CancellationToken.None);
        Assert.Equal(answered401, recorded.Count(r => r.Rule == "identity.missing_token"));
        using var withToken = await _http.SendAsync(GatewayClients.InitializeRequest(_server.Endpoint, _gateway.Mint("analyst")));
        Assert.Equal(HttpStatusCode.OK, withToken.StatusCode);
    }

    [Fact]
    public async Task A_disabled_tokens_tool_calls_are_recorded_up_to_the_same_rate_and_answered_429_past_it()
    {
        await _server.State.SetDisabledAsync("ops-bot", true, "alice", CancellationToken.None);
        var token = _gateway.Mint("ops-bot");
        HttpRequestMessage Call()
        {
            var request = new HttpRequestMessage(HttpMethod.Post, _server.Endpoint)
            {
                Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{"connection":"shop","sql":"select 1"}}}""", System.Text.Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new("Bearer", token);
            request.Headers.Accept.ParseAdd("application/json, text/event-stream");
            return request;
        }

        var reached = await FloodAsync(Call, HttpStatusCode.OK);
        var recorded = await _server.State.ListAsync(new AuditQuery(Agent: "ops-bot", Decision: Verdict.Denied, Limit: 10_000), CancellationToken.None);
        Assert.Equal(reached, recorded.Count(r => r.Rule == "identity.agent_disabled" && r.Tool == "query" && r.Sql == "select 1"));
    }

    [Fact]
    public async Task A_disabled_agent_opens_no_session_and_gets_no_tool_list_and_what_its_open_session_tries_is_recorded()
    {
        await using var client = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        Assert.NotEmpty(await client.ListToolsAsync());

        await _server.State.SetDisabledAsync("analyst", true, "alice", CancellationToken.None);

        // Not only its tool calls: the tool list, and a new session, are refused at the door.
        var listing = await Assert.ThrowsAsync<HttpRequestException>(async () => await client.ListToolsAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, listing.StatusCode);
        var (status, challenge) = await GatewayClients.KnockAsync(_server.Endpoint, _gateway.Mint("analyst"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("error=\"invalid_token\", error_description=\"agent 'analyst' has been disabled by an admin", challenge);

        // A tool call on the session it opened before reaches the tool, which refuses it and records what it tried.
        var calling = await client.QueryAsync("select id from orders where id = 7");
        Assert.Equal("identity.agent_disabled", calling.Rule());
        var tried = await _server.State.GetAsync(calling.AuditId(), CancellationToken.None);
        Assert.Equal(("analyst", "select id from orders where id = 7"), (tried!.Agent, tried.Sql));

        var denied = await _server.State.ListAsync(new AuditQuery(Agent: "analyst", Decision: Verdict.Denied), CancellationToken.None);
        Assert.Equal(3, denied.Count(r => r.Rule == "identity.agent_disabled"));

        // Others are untouched, and the agent is back once enabled.
        await using var other = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        Assert.NotEqual(true, (await other.QueryAsync("select 1")).IsError);
        await _server.State.SetDisabledAsync("analyst", false, "alice", CancellationToken.None);
        await using var again = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        Assert.NotEqual(true, (await again.QueryAsync("select 1")).IsError);
    }

    [Theory]
    [InlineData("wrong_audience")]
    [InlineData("expired")]
    [InlineData("malformed")]
    public async Task A_bad_token_gets_401_and_a_denied_record_naming_why(string kind)
    {
        var token = kind switch
        {
            "expired" => _gateway.Mint("analyst", issuedAt: DateTimeOffset.UtcNow.AddHours(-1)),
            "malformed" => "eyJhbGciOi.not.valid",
            _ => Gatehouse.Enforcement.Identity.DevIssuer.Mint(
                _gateway.Policy.Issuers[0] with { Audiences = ["another-service"] },
                Gatehouse.Enforcement.Identity.DevIssuer.LoadOrCreateKey(_gateway.Policy.Issuers[0].Keys.DevKeyFile!),
                "analyst", [], TimeSpan.FromMinutes(5), DateTimeOffset.UtcNow),
        };
        using var response = await _http.SendAsync(GatewayClients.InitializeRequest(_server.Endpoint, token));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var denied = await _server.State.ListAsync(new AuditQuery(Decision: Verdict.Denied), CancellationToken.None);
        Assert.Contains(denied, r => r.Rule == $"identity.{(kind == "expired" ? "expired_token" : kind == "malformed" ? "malformed_token" : "wrong_audience")}");
    }

    [Fact]
    public async Task A_token_whose_unverified_issuer_holds_characters_no_header_may_carry_still_gets_its_challenge()
    {
        // The refusal quotes the claimed issuer; written into WWW-Authenticate as it stood, a non-ASCII or control character
        // made the server throw while sending the 401, which then went out as a bare 500 without its challenge.
        static string Part(string json) => Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Encode(json);
        var token = $"{Part("""{"alg":"RS256","typ":"JWT"}""")}.{Part("""{"iss":"https://é\u0001.example/\\","sub":"x"}""")}.AAAA";

        using var response = await _http.SendAsync(GatewayClients.InitializeRequest(_server.Endpoint, token));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var challenge = string.Join(" ", response.Headers.WwwAuthenticate.Select(h => h.ToString()));
        Assert.Contains("error=\"invalid_token\"", challenge);
        Assert.Contains("resource_metadata=", challenge);
        Assert.Contains("error_description=\"tokens from issuer 'https://??.example//' are not trusted by this gateway\"", challenge);
        Assert.All(challenge, c => Assert.InRange(c, ' ', '~'));
    }

    [Fact]
    public async Task A_browser_origin_that_is_not_loopback_is_refused()
    {
        using var evil = await _http.SendAsync(GatewayClients.InitializeRequest(_server.Endpoint, _gateway.Mint("analyst"), origin: "https://evil.example"));
        Assert.Equal(HttpStatusCode.Forbidden, evil.StatusCode);
        using var local = await _http.SendAsync(GatewayClients.InitializeRequest(_server.Endpoint, _gateway.Mint("analyst"), origin: "http://localhost:6274"));
        Assert.Equal(HttpStatusCode.OK, local.StatusCode);
    }

    [Fact]
    public async Task A_rebound_host_name_is_refused()
    {
        var request = GatewayClients.InitializeRequest(_server.Endpoint, _gateway.Mint("analyst"));
        request.Headers.Host = "attacker.example";
        using var response = await _http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Two_agents_over_http_are_attributed_separately()
    {
        await using var analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        await using var ops = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        var results = await Task.WhenAll(analyst.QueryAsync("select count(*) from customers"), ops.QueryAsync("select count(*) from orders"));
        Assert.All(results, r => Assert.NotEqual(true, r.IsError));
        Assert.Equal("analyst", (await _server.State.GetAsync(results[0].AuditId(), CancellationToken.None))!.Agent);
        Assert.Equal("ops-bot", (await _server.State.GetAsync(results[1].AuditId(), CancellationToken.None))!.Agent);
        Assert.Equal(20L, results[0].Structured().GetProperty("rows")[0][0].GetInt64());
    }

    [Fact]
    public async Task A_write_grant_lets_one_agent_change_its_table_and_nothing_else()
    {
        await using var ops = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        var update = await ops.QueryAsync("update orders set note = $1 where id = $2", ["call before delivery", 7]);
        Assert.NotEqual(true, update.IsError);
        Assert.Equal(1, update.Structured().GetProperty("affected_rows").GetInt32());
        Assert.Equal("call before delivery", await pg.AdminScalarAsync("select note from orders where id = 7"));

        // The gateway's credential holds no UPDATE on customers: PostgreSQL itself refuses, below the policy.
        var floor = await ops.QueryAsync("update customers set email = 'x@example.com' where id = 1");
        Assert.Equal("database.permission_denied", floor.Rule());
        Assert.Contains("permission denied for table customers", floor.Text());

        // The credential may delete payments (for approved work), but ops-bot's grant may not.
        var cte = await ops.QueryAsync("with d as (delete from payments where id = 1 returning id) select count(*) from d");
        Assert.Equal("grant.relation_read_only", cte.Rule());
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from payments where id = 1"));
    }
}
