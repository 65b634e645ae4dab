using System.Text.Json;
using Gatehouse.Connectors.State;
using Gatehouse.McpServer.Hosting;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>Real MCP clients (the SDK's McpClient) against a real gateway: a stdio child process, or the HTTP host on loopback.</summary>
public static class GatewayClients
{
    public static string GatehouseBinary => Path.Combine(AppContext.BaseDirectory, "gatehouse");

    public static async Task<McpClient> StdioAsync(TestGateway gateway, string? token, string? tokenFile = null, IList<string>? stderr = null, McpClientOptions? options = null, string? logLevel = null)
    {
        var arguments = new List<string> { "serve", "--config", gateway.PolicyPath };
        if (tokenFile is not null)
        {
            arguments.AddRange(["--token-file", tokenFile]);
        }

        var environment = new Dictionary<string, string?> { [StdioCallerToken.EnvironmentVariable] = token, [Logging.LevelVariable] = logLevel };
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = "gatehouse",
            Command = GatehouseBinary,
            Arguments = arguments,
            EnvironmentVariables = environment,
            StandardErrorLines = line =>
            {
                if (stderr is not null)
                {
                    lock (stderr)
                    {
                        stderr.Add(line);
                    }
                }
            },
        });
        return await McpClient.CreateAsync(transport, options);
    }

    public static async Task<McpClient> HttpAsync(Uri endpoint, string? token, McpClientOptions? options = null)
    {
        var headers = new Dictionary<string, string>();
        if (token is not null)
        {
            headers["Authorization"] = "Bearer " + token;
        }

        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = endpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = headers,
        });
        return await McpClient.CreateAsync(transport, options);
    }

    /// <summary>A raw MCP initialize request, for what the HTTP door answers before any session opens.</summary>
    public static HttpRequestMessage InitializeRequest(Uri endpoint, string? token = null, string? origin = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, endpoint)
        {
            Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (token is not null)
        {
            request.Headers.Authorization = new("Bearer", token);
        }

        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        return request;
    }

    /// <summary>What the HTTP door answers a token's initialize request: its status and its WWW-Authenticate challenge.</summary>
    public static async Task<(System.Net.HttpStatusCode Status, string Challenge)> KnockAsync(Uri endpoint, string token)
    {
        using var http = new HttpClient();
        using var response = await http.SendAsync(InitializeRequest(endpoint, token));
        return (response.StatusCode, string.Join(" ", response.Headers.WwwAuthenticate.Select(h => h.ToString())));
    }

    public static Task<CallToolResult> QueryAsync(this McpClient client, string sql, object?[]? parameters = null, int? maxRows = null, string connection = "shop", CancellationToken cancellationToken = default)
    {
        var arguments = new Dictionary<string, object?> { ["connection"] = connection, ["sql"] = sql };
        if (parameters is not null)
        {
            arguments["params"] = parameters;
        }

        if (maxRows is not null)
        {
            arguments["max_rows"] = maxRows;
        }

        return client.CallToolAsync("query", arguments, cancellationToken: cancellationToken).AsTask();
    }

    /// <summary>Calls request_access for tables and returns the structured answer (request_id, status, your_requests…).</summary>
    public static async Task<CallToolResult> RequestAccessAsync(this McpClient client, string[] tables, string access, string reason, string duration = "10m", string connection = "shop") =>
        await client.CallToolAsync("request_access", new Dictionary<string, object?>
        {
            ["connection"] = connection,
            ["tables"] = tables,
            ["access"] = access,
            ["reason"] = reason,
            ["duration"] = duration,
        });

    public static JsonElement Structured(this CallToolResult result) =>
        result.StructuredContent ?? throw new InvalidOperationException("The tool result has no structured content: " + Text(result));

    public static string Text(this CallToolResult result) =>
        string.Join("\n", result.Content.OfType<TextContentBlock>().Select(t => t.Text));

    /// <summary>The rule named by a refused call.</summary>
    public static string Rule(this CallToolResult result) =>
        result.Structured().GetProperty("error").GetProperty("rule").GetString()!;

    public static string AuditId(this CallToolResult result) =>
        result.Structured().GetProperty("audit_id").GetString()!;
}

/// <summary>The HTTP host running in this process on a free loopback port, stopped on dispose.</summary>
public sealed class HttpGateway : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task _run = Task.CompletedTask;

    public Uri Endpoint { get; private set; } = null!;

    public GatewayState Gateway { get; private set; } = null!;

    public SqlStateStore State => Gateway.Store;

    public static async Task<HttpGateway> StartAsync(TestGateway gateway)
    {
        var http = new HttpGateway { Gateway = await GatewayState.OpenAsync(gateway.Policy, CancellationToken.None) };
        var started = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        http._run = Task.Run(async () =>
        {
            try
            {
                await HttpHost.RunAsync(gateway.Policy, http.Gateway, "127.0.0.1:0", url =>
                {
                    started.TrySetResult(url);
                    return Task.CompletedTask;
                }, http._stop.Token);
            }
            catch (Exception e)
            {
                started.TrySetException(e);
            }
        });
        http.Endpoint = await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        return http;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _run;
        _stop.Dispose();
        // A PostgreSQL store polls its version until disposed.
        if (State is IAsyncDisposable store)
        {
            await store.DisposeAsync();
        }
    }
}
