using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>
/// A real OIDC provider (npm <c>oidc-provider</c>, tests/oidc/provider.mjs) on a loopback port, issuing client_credentials JWT
/// access tokens to two agent clients. It can be stopped and started again, with a rotated signing key if asked.
/// </summary>
public sealed class OidcProvider : IAsyncDisposable
{
    public static readonly (string Id, string Secret)[] Clients = [("agent-a", "secret-a-" + Guid.NewGuid().ToString("N")), ("agent-b", "secret-b-" + Guid.NewGuid().ToString("N"))];

    private readonly string _keysFile = Path.Combine(TestDirectory.Create("oidc"), "keys.json");
    private readonly HttpClient _http = new();
    private Process? _process;

    private OidcProvider(int port, string resource)
    {
        Port = port;
        Resource = resource;
    }

    public int Port { get; }

    public string Resource { get; }

    public string Issuer => $"http://127.0.0.1:{Port}";

    /// <summary>The kid of the key signing new tokens.</summary>
    public string SigningKeyId { get; private set; } = "";

    /// <summary>
    /// Starts a provider on a free port. The issuer URL names the port before the provider listens, so another process can
    /// take the port in between; the provider then exits with EADDRINUSE, and a new port is tried.
    /// </summary>
    public static async Task<OidcProvider> StartAsync(string resource)
    {
        for (var attempt = 1; ; attempt++)
        {
            var provider = new OidcProvider(TestGateway.FreePort(), resource);
            try
            {
                await provider.StartAsync(rotate: false);
                return provider;
            }
            catch (InvalidOperationException e) when (attempt < 5 && e.Message.Contains("EADDRINUSE", StringComparison.Ordinal))
            {
                await provider.DisposeAsync();
            }
        }
    }

    public async Task StartAsync(bool rotate)
    {
        var directory = await NodePackages.EnsureAsync("oidc");

        var start = new ProcessStartInfo(await NodePackages.NodeAsync(), [Path.Combine(directory, "provider.mjs")])
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["PORT"] = Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["KEYS_FILE"] = _keysFile;
        start.Environment["ROTATE"] = rotate ? "1" : "0";
        start.Environment["RESOURCE"] = Resource;
        start.Environment["CLIENTS"] = JsonSerializer.Serialize(Clients.Select(c => new { id = c.Id, secret = c.Secret }));
        _process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var line = await _process.StandardOutput.ReadLineAsync(timeout.Token)
                ?? throw new InvalidOperationException("the OIDC provider exited: " + await _process.StandardError.ReadToEndAsync(timeout.Token));
            if (line.StartsWith("ready ", StringComparison.Ordinal))
            {
                SigningKeyId = line[(line.IndexOf("kid=", StringComparison.Ordinal) + 4)..];
                break;
            }
        }
    }

    public async Task StopAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    /// <summary>A client_credentials access token for <paramref name="client"/>, for the given resource (RFC 8707).</summary>
    public async Task<string> TokenAsync(string client, string? resource = null, string scope = "gatehouse.query")
    {
        var secret = Clients.Single(c => c.Id == client).Secret;
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{Issuer}/token")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials",
                ["resource"] = resource ?? Resource,
                ["scope"] = scope,
            }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{client}:{secret}")));
        using var response = await _http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"the OIDC provider refused a token: {body}");
        }

        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _http.Dispose();
    }

    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Mcp.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("the repository root (Mcp.sln) is not above the test binaries");
    }

}
