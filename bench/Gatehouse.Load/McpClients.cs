using ModelContextProtocol.Client;

namespace Gatehouse.Load;

public static class McpClients
{
    /// <summary>A client over Streamable HTTP, calling with the agent's token when there is one (the no-op server takes none).</summary>
    public static Task<McpClient> HttpAsync(Uri endpoint, string? token)
    {
        var options = new HttpClientTransportOptions { Endpoint = endpoint, TransportMode = HttpTransportMode.StreamableHttp };
        if (token is not null)
        {
            options.AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token };
        }

        return McpClient.CreateAsync(new HttpClientTransport(options));
    }
}
