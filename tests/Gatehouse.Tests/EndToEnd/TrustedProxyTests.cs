using System.Net;
using Gatehouse.McpServer.Admin;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// The gateway behind a TLS-terminating proxy on loopback, which the policy names: what the proxy forwards is believed, what
/// a client forwards is not.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class TrustedProxyTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Admin = """

        admin:
          audience: gatehouse-admin
          users: [alice]
        """;

    private readonly TestGateway _trusting = TestGateway.Create(pg, TestGateway.DefaultAgents + Admin, gateway: "http:\n  trusted_proxies: [127.0.0.1]");
    private readonly TestGateway _untrusting = TestGateway.Create(pg, TestGateway.DefaultAgents + Admin);
    private readonly HttpClient _http = new(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false });
    private HttpGateway _behindProxy = null!;
    private HttpGateway _direct = null!;

    public async Task InitializeAsync()
    {
        _behindProxy = await HttpGateway.StartAsync(_trusting);
        _direct = await HttpGateway.StartAsync(_untrusting);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _behindProxy.DisposeAsync();
        await _direct.DisposeAsync();
    }

    private static HttpRequestMessage Tokenless(Uri endpoint, string? proto = null, string? forwardedFor = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, endpoint)
        {
            Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        Forwarded(request, proto, forwardedFor);
        return request;
    }

    private static void Forwarded(HttpRequestMessage request, string? proto, string? forwardedFor)
    {
        if (proto is not null)
        {
            request.Headers.Add("X-Forwarded-Proto", proto);
        }

        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }
    }

    private async Task<string> ResourceMetadataAsync(Uri endpoint, string? proto)
    {
        using var response = await _http.SendAsync(Tokenless(endpoint, proto));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var challenge = response.Headers.WwwAuthenticate.ToString();
        var start = challenge.IndexOf("resource_metadata=\"", StringComparison.Ordinal) + "resource_metadata=\"".Length;
        return challenge[start..challenge.IndexOf('"', start)];
    }

    private async Task<HttpResponseMessage> SignInAsync(HttpGateway server, TestGateway gateway, string origin, string? proto)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Endpoint, AdminConsole.Path + "/login"))
        {
            Content = new FormUrlEncodedContent([new("token", gateway.MintAdmin("alice"))]),
        };
        request.Headers.Add("Origin", origin);
        Forwarded(request, proto, null);
        return await _http.SendAsync(request);
    }

    [Fact]
    public async Task Behind_a_named_proxy_the_resource_metadata_says_https()
    {
        var host = _behindProxy.Endpoint.Authority;
        Assert.Equal($"https://{host}/.well-known/oauth-protected-resource/mcp", await ResourceMetadataAsync(_behindProxy.Endpoint, "https"));
        Assert.Equal($"https://{host}/.well-known/oauth-protected-resource/mcp", await ResourceMetadataAsync(_behindProxy.Endpoint, "HTTPS"));
        Assert.Equal($"http://{host}/.well-known/oauth-protected-resource/mcp", await ResourceMetadataAsync(_behindProxy.Endpoint, null));

        using var metadata = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"http://{host}/.well-known/oauth-protected-resource/mcp") { Headers = { { "X-Forwarded-Proto", "https" } } });
        Assert.Contains($"\"resource\":\"https://{host}/mcp\"", await metadata.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_named_proxy_forwarded_headers_are_ignored()
    {
        var host = _direct.Endpoint.Authority;
        Assert.Equal($"http://{host}/.well-known/oauth-protected-resource/mcp", await ResourceMetadataAsync(_direct.Endpoint, "https"));

        using var signIn = await SignInAsync(_direct, _untrusting, $"https://{host}", "https");
        Assert.Equal(HttpStatusCode.Forbidden, signIn.StatusCode);

        Assert.True(await LimitedAsync(_direct.Endpoint), "each request named another client and none was limited");
    }

    [Fact]
    public async Task The_environment_variable_that_trusts_every_proxy_is_not_obeyed()
    {
        await using var served = await ServedGateway.StartAsync(_untrusting, environment: new Dictionary<string, string> { ["ASPNETCORE_FORWARDEDHEADERS_ENABLED"] = "true" });
        var host = served.Endpoint.Authority;
        Assert.Equal($"http://{host}/.well-known/oauth-protected-resource/mcp", await ResourceMetadataAsync(served.Endpoint, "https"));
        Assert.True(await LimitedAsync(served.Endpoint), "each request named another client and none was limited");
    }

    // Twice a full bucket of tokenless requests at once, each naming a different client before the one address a proxy
    // would append: limited if and only if what a client says about itself is not believed.
    private async Task<bool> LimitedAsync(Uri endpoint, string? appended = null)
    {
        var responses = await Task.WhenAll(Enumerable.Range(0, 2 * RefusalRecorder.Burst).Select(i =>
            _http.SendAsync(Tokenless(endpoint, forwardedFor: $"198.51.100.{i}" + (appended is null ? "" : ", " + appended)))));
        Array.ForEach(responses, r => r.Dispose());
        return responses.Any(r => r.StatusCode == HttpStatusCode.TooManyRequests);
    }

    [Fact]
    public async Task The_console_signs_in_over_the_proxys_https_with_a_secure_cookie()
    {
        var host = _behindProxy.Endpoint.Authority;
        using (var overHttps = await SignInAsync(_behindProxy, _trusting, $"https://{host}", "https"))
        {
            Assert.Equal(HttpStatusCode.Redirect, overHttps.StatusCode);
            var cookie = Assert.Single(overHttps.Headers.GetValues("Set-Cookie"));
            Assert.StartsWith(ConsoleSessions.Cookie + "=", cookie, StringComparison.Ordinal);
            Assert.Contains("; secure", cookie, StringComparison.OrdinalIgnoreCase);
        }

        // The browser's https origin matches only because the proxy said https: without it the sign-in is from elsewhere.
        using (var mismatched = await SignInAsync(_behindProxy, _trusting, $"https://{host}", null))
        {
            Assert.Equal(HttpStatusCode.Forbidden, mismatched.StatusCode);
        }

        using var overHttp = await SignInAsync(_behindProxy, _trusting, $"http://{host}", null);
        Assert.Equal(HttpStatusCode.Redirect, overHttp.StatusCode);
        Assert.DoesNotContain("; secure", Assert.Single(overHttp.Headers.GetValues("Set-Cookie")), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Tokenless_requests_are_limited_per_client_the_proxy_names_and_a_client_cannot_name_itself()
    {
        var statuses = new List<HttpStatusCode>();
        for (var wave = 0; wave < 20 && !statuses.Contains(HttpStatusCode.TooManyRequests); wave++)
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => _http.SendAsync(Tokenless(_behindProxy.Endpoint, forwardedFor: "203.0.113.7"))));
            statuses.AddRange(responses.Select(r => r.StatusCode));
            Array.ForEach(responses, r => r.Dispose());
        }

        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);

        // Another client behind the same proxy is still heard and recorded.
        using (var other = await _http.SendAsync(Tokenless(_behindProxy.Endpoint, forwardedFor: "203.0.113.8")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, other.StatusCode);
        }

        // The proxy appends the address it saw; what the client put before it is not believed, so the flood stays limited.
        Assert.True(await LimitedAsync(_behindProxy.Endpoint, appended: "203.0.113.7"), "each request named another client and none was limited");
        Assert.True(RefusalRecorder.Burst <= statuses.Count(s => s == HttpStatusCode.Unauthorized));
    }

    [Fact]
    public async Task Console_sign_ins_are_recorded_up_to_the_rate_and_answered_429_past_it()
    {
        var attempts = await Task.WhenAll(Enumerable.Range(0, 2 * RefusalRecorder.Burst).Select(async _ =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_direct.Endpoint, AdminConsole.Path + "/login"))
            {
                Content = new FormUrlEncodedContent([new("token", "not-a-token")]),
            };
            using var response = await _http.SendAsync(request);
            return response.StatusCode;
        }));

        Assert.Contains(HttpStatusCode.TooManyRequests, attempts);
        var recorded = await _direct.State.ListAsync(new Gatehouse.Enforcement.Audit.AuditQuery(Limit: 10_000), CancellationToken.None);
        Assert.Equal(attempts.Count(s => s == HttpStatusCode.Unauthorized), recorded.Count(r => r.Rule == "admin.sign_in_refused"));
        Assert.Equal(attempts.Length, attempts.Count(s => s is HttpStatusCode.Unauthorized or HttpStatusCode.TooManyRequests));
    }
}
