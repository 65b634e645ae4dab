using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Identity;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>The admin HTTP API against a real gateway: its own authentication, and the same rules as the CLI.</summary>
[Collection(PostgresCollection.Name)]
public sealed class AdminApiTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Policy = """

        approvals:
          approvers: [alice, ops-bot]
          wait: 0s
        admin:
          audience: gatehouse-admin
          users: [alice, ops-bot]
        """;

    private readonly TestGateway _gateway = TestGateway.Create(pg, GuardrailTests.Agents + Policy);
    private readonly HttpClient _http = new();
    private HttpGateway _server = null!;
    private Uri _api = null!;

    public async Task InitializeAsync()
    {
        _server = await HttpGateway.StartAsync(_gateway);
        _api = new Uri(_server.Endpoint, "/admin/api/");
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    private string AdminToken(string person, params string[] groups) => AdminToken(_gateway, person, groups);

    private static string AdminToken(TestGateway gateway, string person, params string[] groups) => gateway.MintAdmin(person, groups);

    private Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, string? token, object? body = null) =>
        SendAsync(_api, method, path, token, body);

    private async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(Uri api, HttpMethod method, string path, string? token, object? body = null)
    {
        using var request = new HttpRequestMessage(method, new Uri(api, path));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement);
    }

    private async Task<string> PendingStatementAsync(int paymentId)
    {
        await using var agent = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        var pending = await agent.QueryAsync("update payments set status = status where id = $1", [paymentId]);
        return pending.Structured().GetProperty("pending_approval").GetProperty("request_id").GetString()!;
    }

    [Fact]
    public async Task A_request_body_over_the_servers_limit_is_refused_as_too_large_not_as_a_store_outage()
    {
        // Declared past Kestrel's 30 MB body limit, which it enforces on the first read of the body (the approval's reason).
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(_server.Endpoint.Host, _server.Endpoint.Port);
        var stream = tcp.GetStream();
        var head = $"POST /admin/api/requests/apr_0/approve HTTP/1.1\r\nHost: {_server.Endpoint.Authority}\r\nAuthorization: Bearer {AdminToken("alice")}\r\n"
            + "Content-Type: application/json\r\nContent-Length: 40000000\r\n\r\n{}";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(head));
        using var reader = new StreamReader(stream, System.Text.Encoding.ASCII);
        Assert.StartsWith("HTTP/1.1 413", await reader.ReadLineAsync());
    }

    [Theory]
    [InlineData("reason=checked+the+invoice", "application/x-www-form-urlencoded", HttpStatusCode.UnsupportedMediaType, "send the reason as JSON")]
    [InlineData("{\"reason\": \"checked", "application/json", HttpStatusCode.BadRequest, "not valid JSON")]
    [InlineData("{\"reason\": 42}", "application/json", HttpStatusCode.BadRequest, "reason must be a string")]
    [InlineData("[\"checked\"]", "application/json", HttpStatusCode.BadRequest, "must be a JSON object")]
    [InlineData("{\"reason\": \"LONG\"}", "application/json", HttpStatusCode.BadRequest, "the limit is 2000")]
    [InlineData("{\"reason\": \"checked \\ud800\"}", "application/json", HttpStatusCode.BadRequest, "lone surrogate")]
    [InlineData("{\"reason\": \"checked\\u0000\"}", "application/json", HttpStatusCode.BadRequest, "NUL character")]
    [InlineData("LATIN1", "application/json", HttpStatusCode.BadRequest, "the body is not UTF-8")]
    [InlineData("BOM+LATIN1", "application/json", HttpStatusCode.BadRequest, "the body is not UTF-8")]
    public async Task A_decision_whose_reason_cannot_be_read_is_refused_and_nothing_is_decided(string body, string type, HttpStatusCode status, string message)
    {
        // It was decided anyway, on record without the reason the admin sent; a decision cannot be taken back.
        var id = await PendingStatementAsync(17);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_api, $"requests/{id}/approve"))
        {
            Content = body.EndsWith("LATIN1", StringComparison.Ordinal)
                ? new ByteArrayContent([.. body.StartsWith("BOM", StringComparison.Ordinal) ? new byte[] { 0xEF, 0xBB, 0xBF } : [], .. System.Text.Encoding.Latin1.GetBytes("{\"reason\": \"checked the caf\u00e9's invoice\"}")])
                {
                    Headers = { ContentType = new MediaTypeHeaderValue(type) },
                }
                : new StringContent(body.Replace("LONG", new string('r', 2001), StringComparison.Ordinal), System.Text.Encoding.UTF8, type),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken("alice"));

        using var response = await _http.SendAsync(request);

        Assert.Equal(status, response.StatusCode);
        Assert.Contains(message, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Contains("nothing was decided", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("pending", (await SendAsync(HttpMethod.Get, $"requests/{id}", AdminToken("alice"))).Body.GetProperty("status").GetString());
        // Refused, and on record as refused: every admin action is, with its channel.
        var refusals = await _server.State.ListAsync(new AuditQuery(Agent: "alice", Limit: 10_000), CancellationToken.None);
        Assert.Contains(refusals, r => r.Rule == "approval.refused" && r.Transport == "admin-api" && r.Reason.Contains($"refused before deciding {id}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_admin_action_by_someone_not_an_admin_or_disabling_a_name_no_token_can_carry_is_recorded_as_refused()
    {
        var (forbidden, _) = await SendAsync(HttpMethod.Post, "agents/disable?agent=analyst", _gateway.MintAdmin("mallory"));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden);
        var (refused, _) = await SendAsync(HttpMethod.Post, "agents/disable?agent=%20analyst", AdminToken("alice"));
        Assert.Equal(HttpStatusCode.BadRequest, refused);

        var records = await _server.State.ListAsync(new AuditQuery(Limit: 10_000), CancellationToken.None);
        Assert.Contains(records, r => r.Rule == "admin.not_an_admin" && r.Agent == "mallory" && r.Tool == "admin POST /admin/api/agents/disable" && r.Decision == Verdict.Denied);
        Assert.Contains(records, r => r.Rule == "agent.refused" && r.Agent == "alice" && r.Reason.Contains("has spaces at its start or end", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("calls?text=%00")]
    [InlineData("calls?agent=ops%00bot")]
    public async Task A_nul_in_a_filter_is_a_bad_request_not_a_store_outage(string path)
    {
        // PostgreSQL refuses a NUL in text, which the admin API answered as its store failing (503, Retry-After). (Kestrel
        // itself refuses one in the path.)
        var (status, body) = await SendAsync(HttpMethod.Get, path, AdminToken("alice"));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("holds a NUL character", body.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(9, 10)]
    [InlineData(1, 65)]
    public async Task A_sign_in_form_with_more_or_longer_fields_than_a_token_is_refused_as_too_large(int fields, int keyLength)
    {
        // ASP.NET's own form limits threw past 1,024 fields or a 2 KB key, and the sign-in answered a bare 500.
        var form = string.Join('&', Enumerable.Range(0, fields).Select(i => new string('k', keyLength - 1) + (char)('a' + i) + "=x"));
        using var signIn = new HttpRequestMessage(HttpMethod.Post, new Uri(_server.Endpoint, "/admin/login"))
        {
            Content = new StringContent(form, System.Text.Encoding.ASCII, "application/x-www-form-urlencoded"),
        };

        using var response = await _http.SendAsync(signIn);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("too many or too long fields", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_flood_of_tokenless_requests_to_mcp_does_not_lock_admins_out_of_the_console()
    {
        // Sign-ins drew from the same rates as tokenless requests to /mcp, so such a flood answered the admins 429 too.
        var flooded = false;
        for (var wave = 0; wave < 20 && !flooded; wave++)
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => _http.SendAsync(GatewayClients.InitializeRequest(_server.Endpoint))));
            flooded = responses.Any(r => r.StatusCode == HttpStatusCode.TooManyRequests);
            Array.ForEach(responses, r => r.Dispose());
        }

        Assert.True(flooded, "the tokenless requests were never answered 429");
        using var signIn = new HttpRequestMessage(HttpMethod.Post, new Uri(_server.Endpoint, "/admin/login")) { Content = new FormUrlEncodedContent([new("token", AdminToken("alice"))]) };
        using var signedIn = await new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }).SendAsync(signIn);
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
    }

    [Fact]
    public async Task A_calls_detail_lists_the_statement_approval_it_asked_for()
    {
        await using var agent = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        var pending = await agent.QueryAsync("update payments set status = status where id = $1", [31]);
        var requestId = pending.Structured().GetProperty("pending_approval").GetProperty("request_id").GetString();

        var (status, body) = await SendAsync(HttpMethod.Get, $"calls/{pending.AuditId()}", AdminToken("alice"));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(requestId, Assert.Single(body.GetProperty("approvals").EnumerateArray()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task An_agent_named_with_slashes_is_disabled_under_its_own_name()
    {
        // A SPIFFE id: in the path, its encoded slashes stayed encoded and a name no token carries was switched off.
        const string Spiffe = "spiffe://corp/ns/etl/sa/loader";

        var (status, body) = await SendAsync(HttpMethod.Post, $"agents/disable?agent={Uri.EscapeDataString(Spiffe)}", AdminToken("alice"));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal($"Agent '{Spiffe}' is disabled: its next call is refused, on every gateway sharing this state.", body.GetProperty("result").GetString());
        var (door, challenge) = await GatewayClients.KnockAsync(_server.Endpoint, _gateway.Mint(Spiffe));
        Assert.Equal(HttpStatusCode.Unauthorized, door);
        Assert.Contains($"agent '{Spiffe}' has been disabled", challenge);
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(HttpMethod.Post, "agents/enable", AdminToken("alice"))).Status);
    }

    [Fact]
    public async Task Disabling_a_name_no_token_can_carry_is_refused_rather_than_reported_done()
    {
        var (status, body) = await SendAsync(HttpMethod.Post, "agents/disable?agent=analyst%20", AdminToken("alice"));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("the agent name 'analyst ' has spaces at its start or end", body.GetProperty("error").GetString());
        var (_, agents) = await SendAsync(HttpMethod.Get, "agents", AdminToken("alice"));
        Assert.DoesNotContain(agents.EnumerateArray(), a => a.GetProperty("disabled").GetBoolean());
    }

    [Fact]
    public async Task Only_an_admin_token_for_an_admin_opens_the_api_and_an_agent_token_never_does()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Get, "requests", null)).Status);
        var agentToken = await SendAsync(HttpMethod.Get, "requests", _gateway.Mint("ops-bot"));
        Assert.Equal(HttpStatusCode.Unauthorized, agentToken.Status);
        Assert.Contains("audience", agentToken.Body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(HttpMethod.Get, "requests", AdminToken("mallory"))).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, "requests", AdminToken("alice"))).Status);
    }

    [Fact]
    public async Task A_revoked_admin_token_and_the_console_session_it_opened_stop_working_at_once()
    {
        async Task<HttpStatusCode> GetAsync(string? token, string? cookie = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_api, "requests"));
            if (token is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            if (cookie is not null)
            {
                request.Headers.Add("Cookie", cookie);
            }

            using var response = await _http.SendAsync(request);
            return response.StatusCode;
        }

        Task<(int ExitCode, string Stdout, string Stderr)> Agents(params string[] arguments) =>
            StdioTests.RunGatehouse(["agents", .. arguments, "--as", "carol", "--config", _gateway.PolicyPath]);

        var leaked = AdminToken("alice");
        var jti = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(leaked).Id;
        using var signIn = new HttpRequestMessage(HttpMethod.Post, new Uri(_server.Endpoint, "/admin/login")) { Content = new FormUrlEncodedContent([new("token", AdminToken("alice"))]) };
        using var signedIn = await new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }).SendAsync(signIn);
        var cookie = signedIn.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (await GetAsync(leaked), await GetAsync(null, cookie)));
        try
        {
            // One leaked token, by its id: that token stops; the console, opened with another, goes on.
            Assert.Equal(0, (await Agents("disable", "--jti", jti)).ExitCode);
            Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync(leaked));
            Assert.Equal(HttpStatusCode.OK, await GetAsync(null, cookie));

            // Everything of the person's: the console session ends too, for good.
            Assert.Equal(0, (await Agents("disable", "--subject", "alice")).ExitCode);
            Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync(null, cookie));
            Assert.Equal(0, (await Agents("enable", "--subject", "alice")).ExitCode);
            Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync(null, cookie));
            Assert.Equal(HttpStatusCode.OK, await GetAsync(AdminToken("alice")));
        }
        finally
        {
            await Agents("enable", "--jti", jti);
            await Agents("enable", "--subject", "alice");
        }
    }

    [Fact]
    public async Task The_consoles_sign_in_and_sign_out_read_no_large_body_from_anyone()
    {
        var console = new Uri(_server.Endpoint, "/admin/");
        async Task<HttpStatusCode> PostAsync(string path, HttpContent content, string? cookie = null, bool chunked = false)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(console, path)) { Content = content };
            request.Headers.TransferEncodingChunked = chunked;
            request.Headers.Add("Origin", _server.Endpoint.GetLeftPart(UriPartial.Authority));
            if (cookie is not null)
            {
                request.Headers.Add("Cookie", cookie);
            }

            using var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false };
            using var http = new HttpClient(handler);
            using var response = await http.SendAsync(request);
            return response.StatusCode;
        }

        var megabyte = new string('a', 1 << 20);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, await PostAsync("login", new FormUrlEncodedContent([new("token", megabyte)])));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, await PostAsync("login", new MultipartFormDataContent { { new StringContent("x"), "token" } }));

        // Sent in chunks, with no length to refuse it by: reading stops at the limit.
        var chunked = new StringContent("token=" + megabyte, new MediaTypeHeaderValue("application/x-www-form-urlencoded"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, await PostAsync("login", chunked, chunked: true));

        // Signing out without a session reads nothing and just clears the cookie; a real sign-in still works.
        Assert.Equal(HttpStatusCode.Redirect, await PostAsync("logout", new FormUrlEncodedContent([new("csrf", megabyte)]), $"{Gatehouse.McpServer.Admin.ConsoleSessions.Cookie}=nothing"));
        Assert.Equal(HttpStatusCode.Redirect, await PostAsync("login", new FormUrlEncodedContent([new("token", AdminToken("alice"))])));
    }

    [Fact]
    public async Task A_sign_out_that_is_not_confirmed_leaves_the_session_open_and_says_so_and_a_new_sign_in_ends_the_old_session()
    {
        using var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false };
        using var http = new HttpClient(handler);
        var origin = _server.Endpoint.GetLeftPart(UriPartial.Authority);
        async Task<HttpResponseMessage> PostAsync(string path, IEnumerable<KeyValuePair<string, string>> form, string? cookie = null)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_server.Endpoint, "/admin/" + path)) { Content = new FormUrlEncodedContent(form) };
            request.Headers.Add("Origin", origin);
            if (cookie is not null)
            {
                request.Headers.Add("Cookie", cookie);
            }

            return await http.SendAsync(request);
        }

        async Task<HttpStatusCode> SessionAsync(string cookie)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_server.Endpoint, "/admin/session"));
            request.Headers.Add("Cookie", cookie);
            using var response = await http.SendAsync(request);
            return response.StatusCode;
        }

        using var first = await PostAsync("login", [new("token", AdminToken("alice"))]);
        var cookie = first.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        // Without the session's CSRF token (the console page had not loaded it): the cookie was cleared as if signed out.
        using var unconfirmed = await PostAsync("logout", [new("csrf", "")], cookie);
        Assert.Equal(HttpStatusCode.Forbidden, unconfirmed.StatusCode);
        Assert.Contains("Sign-out not confirmed", await unconfirmed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(unconfirmed.Headers.Contains("Set-Cookie"));
        Assert.Equal(HttpStatusCode.OK, await SessionAsync(cookie));

        // Signing in again from the same browser ends the session its cookie held.
        using var second = await PostAsync("login", [new("token", AdminToken("alice"))], cookie);
        var newCookie = second.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        Assert.NotEqual(HttpStatusCode.OK, await SessionAsync(cookie));
        Assert.Equal(HttpStatusCode.OK, await SessionAsync(newCookie));
    }

    // An issuer whose tokens are signed with a secret shared with it, kept in batch.secret in the gateway's directory.
    private const string SharedSecretIssuer = "\n- issuer: batch-scheduler\n  audience: batch\n  algorithms: [HS256]\n  shared_secret_file: batch.secret\n  agents: [nightly-report]\n  groups: []";

    private static string SharedSecretAdminToken(string secret, string person) => new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler().CreateToken(new Microsoft.IdentityModel.Tokens.SecurityTokenDescriptor
    {
        Issuer = "batch-scheduler",
        Audience = "gatehouse-admin",
        Expires = DateTime.UtcNow.AddMinutes(5),
        Claims = new Dictionary<string, object> { ["sub"] = person },
        SigningCredentials = new(new Microsoft.IdentityModel.Tokens.SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(secret)), Microsoft.IdentityModel.Tokens.SecurityAlgorithms.HmacSha256),
    });

    [Fact]
    public async Task A_console_session_ends_once_the_key_that_signed_its_sign_in_token_is_rotated_out()
    {
        var gateway = TestGateway.Create(pg, GuardrailTests.Agents + Policy + "\n  issuers: [gatehouse-dev, batch-scheduler]", issuers: SharedSecretIssuer);
        var secretFile = Path.Combine(gateway.Directory, "batch.secret");
        File.WriteAllText(secretFile, Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        await using var server = await HttpGateway.StartAsync(gateway);
        using var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false });

        async Task<string> SignInAsync(string token)
        {
            using var signIn = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Endpoint, "/admin/login")) { Content = new FormUrlEncodedContent([new("token", token)]) };
            using var signedIn = await browser.SendAsync(signIn);
            Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
            return signedIn.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        }

        async Task<(HttpStatusCode Status, string Body)> RequestsAsync(string cookie)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server.Endpoint, "/admin/api/requests"));
            request.Headers.Add("Cookie", cookie);
            using var response = await browser.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        var cookie = await SignInAsync(SharedSecretAdminToken(File.ReadAllText(secretFile), "alice"));
        Assert.Equal(HttpStatusCode.OK, (await RequestsAsync(cookie)).Status);

        // The secret leaked and is replaced: the session it opened ends with it (the file is read again within a second).
        var rotated = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        File.WriteAllText(secretFile, rotated);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        var answer = await RequestsAsync(cookie);
        while (answer.Status == HttpStatusCode.OK && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            answer = await RequestsAsync(cookie);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, answer.Status);
        Assert.Contains("no longer opens the console", answer.Body);
        Assert.Equal(HttpStatusCode.Unauthorized, (await RequestsAsync(cookie)).Status);

        // The session is over, so the console asks for a sign-in instead of loading a page whose every call is refused.
        using (var session = new HttpRequestMessage(HttpMethod.Get, new Uri(server.Endpoint, "/admin/session")))
        {
            session.Headers.Add("Cookie", cookie);
            using var closed = await browser.SendAsync(session);
            Assert.Equal(HttpStatusCode.Unauthorized, closed.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await RequestsAsync(await SignInAsync(SharedSecretAdminToken(rotated, "alice")))).Status);
    }

    [Fact]
    public async Task Only_the_issuers_the_policy_names_for_admins_can_sign_an_admin_in()
    {
        // Whoever holds a shared secret (an agent platform signing its own agents' tokens) could mint any name, an admin's too.
        var secret = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        string Forged(TestGateway gateway) => SharedSecretAdminToken(secret, "alice");

        // With two issuers trusted the policy must say which may sign admin tokens.
        Assert.Contains(
            Assert.Throws<Gatehouse.Enforcement.Policy.PolicyException>(() => TestGateway.Create(pg, GuardrailTests.Agents + Policy, issuers: SharedSecretIssuer)).Errors,
            e => e.Contains("name under admin.issuers", StringComparison.Ordinal));
        foreach (var (admin, expected) in new[] { (Policy + "\n  issuers: [gatehouse-dev]", HttpStatusCode.Unauthorized), (Policy + "\n  issuers: [gatehouse-dev, batch-scheduler]", HttpStatusCode.OK) })
        {
            var gateway = TestGateway.Create(pg, GuardrailTests.Agents + admin, issuers: SharedSecretIssuer);
            File.WriteAllText(Path.Combine(gateway.Directory, "batch.secret"), secret);
            await using var server = await HttpGateway.StartAsync(gateway);
            var api = new Uri(server.Endpoint, "/admin/api/");
            Assert.Equal(expected, (await SendAsync(api, HttpMethod.Get, "requests", Forged(gateway))).Status);
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(api, HttpMethod.Get, "requests", AdminToken(gateway, "alice"))).Status);
        }
    }

    [Fact]
    public async Task An_admin_approves_through_the_api_under_the_same_rules_as_the_cli_and_it_is_on_record()
    {
        var id = await PendingStatementAsync(13);
        var listed = await SendAsync(HttpMethod.Get, "requests", AdminToken("alice"));
        Assert.Contains(listed.Body.GetProperty("statements").EnumerateArray(), s => s.GetProperty("id").GetString() == id);

        var self = await SendAsync(HttpMethod.Post, $"requests/{id}/approve", AdminToken("ops-bot"));
        Assert.Equal(HttpStatusCode.Forbidden, self.Status);
        Assert.Contains("cannot decide it", self.Body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Post, "requests/apr_missing/approve", AdminToken("alice"))).Status);

        var approved = await SendAsync(HttpMethod.Post, $"requests/{id}/approve", AdminToken("alice"), new { reason = "checked the invoice" });
        Assert.Equal(HttpStatusCode.OK, approved.Status);
        Assert.Equal("approved", (await SendAsync(HttpMethod.Get, $"requests/{id}", AdminToken("alice"))).Body.GetProperty("status").GetString());

        await using var agent = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("ops-bot"));
        Assert.Equal(1, (await agent.QueryAsync("update payments set status = status where id = $1", [13])).Structured().GetProperty("affected_rows").GetInt32());

        var records = await _server.State.ListAsync(new AuditQuery(Agent: "alice"), CancellationToken.None);
        var record = Assert.Single(records, r => r.Classification == id);
        Assert.Equal("admin-api", record.Transport);
        Assert.Contains("checked the invoice", record.Reason);
        Assert.Contains(await _server.State.ListAsync(new AuditQuery(Agent: "ops-bot"), CancellationToken.None), r => r.Rule == "approval.refused");
    }

    [Fact]
    public async Task Approver_groups_come_from_the_admin_token_and_an_admin_outside_them_cannot_decide()
    {
        var gateway = TestGateway.Create(pg, GuardrailTests.Agents + "\napprovals:\n  groups: [dba]\n  wait: 0s\nadmin:\n  audience: gatehouse-admin\n  groups: [dba, auditors]\n");
        await using var server = await HttpGateway.StartAsync(gateway);
        var api = new Uri(server.Endpoint, "/admin/api/");
        await using var agent = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("ops-bot"));
        var id = (await agent.QueryAsync("update payments set status = status where id = $1", [19])).Structured().GetProperty("pending_approval").GetProperty("request_id").GetString()!;

        var auditor = await SendAsync(api, HttpMethod.Post, $"requests/{id}/approve", AdminToken(gateway, "dave", "auditors"));
        Assert.Equal(HttpStatusCode.Forbidden, auditor.Status);
        Assert.Contains("not one of this gateway's approvers", auditor.Body.GetProperty("error").GetString());

        // Cancelling is deciding too: an admin outside the approvers cannot veto a request that way either.
        var cancel = await SendAsync(api, HttpMethod.Post, $"requests/{id}/cancel", AdminToken(gateway, "dave", "auditors"));
        Assert.Equal(HttpStatusCode.Forbidden, cancel.Status);
        Assert.Contains("not one of this gateway's approvers", cancel.Body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(api, HttpMethod.Post, $"requests/{id}/approve", AdminToken(gateway, "erin", "dba"))).Status);
        Assert.Equal(ExitCodes.Refused, (await StdioTests.RunGatehouse(["approvals", "approve", id, "--config", gateway.PolicyPath, "--as", "frank"])).ExitCode);
    }

    [Fact]
    public async Task An_access_request_needs_as_many_approvers_as_a_statement_and_the_first_approval_grants_nothing()
    {
        // Two people for a statement, and (before) one for a grant that could write the table, or see a class unmasked, for hours.
        var gateway = TestGateway.Create(pg, GuardrailTests.Agents + "\napprovals:\n  required: 2\n  pending_ttl: 3h\n  wait: 0s\nadmin:\n  audience: gatehouse-admin\n  users: [alice, bob]\n");
        await using var server = await HttpGateway.StartAsync(gateway);
        var api = new Uri(server.Endpoint, "/admin/api/");
        await using var analyst = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
        var requested = await analyst.RequestAccessAsync(["public.orders"], "write", "fix a typo in a note");
        Assert.Equal("0 of 2", requested.Structured().GetProperty("approvals").GetString());
        var id = requested.Structured().GetProperty("request_id").GetString()!;

        var first = await SendAsync(api, HttpMethod.Post, $"requests/{id}/approve", AdminToken(gateway, "alice"));
        Assert.Equal(HttpStatusCode.OK, first.Status);
        Assert.Contains($"Recorded alice's approval of {id}: 1 of 2 so far.", first.Body.GetProperty("result").GetString());
        var waiting = (await SendAsync(api, HttpMethod.Get, $"requests/{id}", AdminToken(gateway, "bob"))).Body;
        Assert.Equal(("pending", 1, 2), (waiting.GetProperty("status").GetString(), waiting.GetProperty("approvals").GetInt32(), waiting.GetProperty("required").GetInt32()));
        // Two approvers take longer to find than one: it waits pending_ttl, not a fixed hour.
        Assert.Equal(TimeSpan.FromHours(3), waiting.GetProperty("expires_at").GetDateTimeOffset() - waiting.GetProperty("created_at").GetDateTimeOffset());
        Assert.Equal("grant.read_only", (await analyst.QueryAsync("update orders set note = note where id = 1")).Rule());

        // The same person twice is one approval; a second person grants it.
        var twice = await SendAsync(api, HttpMethod.Post, $"requests/{id}/approve", AdminToken(gateway, "alice"));
        Assert.Equal(HttpStatusCode.Forbidden, twice.Status);
        Assert.Contains("has already decided this request", twice.Body.GetProperty("error").GetString());
        var second = await SendAsync(api, HttpMethod.Post, $"requests/{id}/approve", AdminToken(gateway, "bob"));
        Assert.Contains($"Approved {id}: analyst may write public.orders on shop until", second.Body.GetProperty("result").GetString());
        Assert.Equal(1, (await analyst.QueryAsync("update orders set note = note where id = 1")).Structured().GetProperty("affected_rows").GetInt32());
        Assert.Equal(["alice", "bob"], (await SendAsync(api, HttpMethod.Get, $"requests/{id}", AdminToken(gateway, "bob"))).Body.GetProperty("decisions").EnumerateArray().Select(d => d.GetProperty("approver").GetString()));
    }

    [Fact]
    public async Task An_admin_can_cancel_a_request_and_revoke_a_grant()
    {
        var id = await PendingStatementAsync(14);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, $"requests/{id}/cancel", AdminToken("alice"))).Status);
        Assert.Equal(HttpStatusCode.Conflict, (await SendAsync(HttpMethod.Post, $"requests/{id}/cancel", AdminToken("alice"))).Status);

        await using var analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var requested = await analyst.RequestAccessAsync(["public.orders"], "write", "fix a typo in a note");
        var access = requested.Structured().GetProperty("request_id").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, $"requests/{access}/approve", AdminToken("alice"))).Status);
        Assert.Contains((await SendAsync(HttpMethod.Get, "grants", AdminToken("alice"))).Body.EnumerateArray(), g => g.GetProperty("id").GetString() == access);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, $"grants/{access}/revoke", AdminToken("alice"))).Status);
        Assert.Equal("grant.read_only", (await analyst.QueryAsync("update orders set note = note where id = 1")).Rule());

        // A grant revoked already is a conflict with its state; one that never was is not found; an access request is not
        // cancelled (that is for statement requests) but denied.
        var again = await SendAsync(HttpMethod.Post, $"grants/{access}/revoke", AdminToken("alice"));
        Assert.Equal(HttpStatusCode.Conflict, again.Status);
        Assert.Contains("is not an active grant (it is revoked)", again.Body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Post, "grants/req_nothing/revoke", AdminToken("alice"))).Status);
        var cancelAccess = await SendAsync(HttpMethod.Post, $"requests/{access}/cancel", AdminToken("alice"));
        Assert.Equal(HttpStatusCode.Conflict, cancelAccess.Status);
        Assert.Contains("is an access request; cancel applies to statement requests", cancelAccess.Body.GetProperty("error").GetString());
    }
}
