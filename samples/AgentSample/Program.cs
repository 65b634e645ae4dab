// A small agent built on Microsoft.Extensions.AI that uses Gatehouse's MCP tools.
// With an OpenAI-compatible endpoint configured it answers a question with a model;
// without one it says so and runs a scripted tour of the tools.
using System.ClientModel;
using Microsoft.Extensions.AI;
using ModelContextProtocol.Client;
using OpenAI;

var url = Environment.GetEnvironmentVariable("GATEHOUSE_URL") ?? "http://127.0.0.1:8787/mcp";
var token = Environment.GetEnvironmentVariable("GATEHOUSE_TOKEN")
    ?? (Environment.GetEnvironmentVariable("GATEHOUSE_TOKEN_FILE") is { } file ? File.ReadAllText(file).Trim() : null);
if (token is null)
{
    Console.Error.WriteLine("Set GATEHOUSE_TOKEN (or GATEHOUSE_TOKEN_FILE) to an agent token, e.g. from the demo's tokens/analyst.token.");
    return 2;
}

var question = args.Length > 0 ? string.Join(' ', args) : "Which three countries bring the most revenue from delivered orders?";
await using var gatehouse = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
{
    Endpoint = new Uri(url),
    AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
}));
var tools = await gatehouse.ListToolsAsync();
Console.WriteLine($"Connected to {url}; tools: {string.Join(", ", tools.Select(t => t.Name))}");

var endpoint = Environment.GetEnvironmentVariable("OPENAI_BASE_URL");
if (string.IsNullOrWhiteSpace(endpoint))
{
    Console.WriteLine("No model configured (set OPENAI_BASE_URL, OPENAI_MODEL and, if needed, OPENAI_API_KEY). Running the scripted tour instead.");
    await Tour(gatehouse);
    return 0;
}

var model = Environment.GetEnvironmentVariable("OPENAI_MODEL") ?? "gpt-4o-mini";
var apiKey = Environment.GetEnvironmentVariable("OPENAI_API_KEY") ?? "not-needed";
IChatClient chat = new OpenAIClient(new ApiKeyCredential(apiKey), new OpenAIClientOptions { Endpoint = new Uri(endpoint) })
    .GetChatClient(model)
    .AsIChatClient()
    .AsBuilder()
    .UseFunctionInvocation()
    .Build();

var messages = new List<ChatMessage>
{
    new(ChatRole.System, "You answer questions about a shop database using the Gatehouse tools. Call describe_schema first, then query with one SELECT at a time."),
    new(ChatRole.User, question),
};
var response = await chat.GetResponseAsync(messages, new ChatOptions { Tools = [.. tools] });
Console.WriteLine(response.Text);
return 0;

static async Task Tour(McpClient gatehouse)
{
    async Task Call(string title, string tool, Dictionary<string, object?> arguments)
    {
        var result = await gatehouse.CallToolAsync(tool, arguments);
        var text = string.Join("\n", result.Content.OfType<ModelContextProtocol.Protocol.TextContentBlock>().Select(t => t.Text));
        Console.WriteLine($"\n== {title} ({tool}){(result.IsError == true ? " — refused" : "")}\n{(text.Length > 600 ? text[..600] + " …" : text)}");
    }

    await Call("What may I read?", "describe_schema", new() { ["connection"] = "shop", ["table"] = "orders" });
    await Call("Revenue by country", "query", new()
    {
        ["connection"] = "shop",
        ["sql"] = "select c.country, sum(o.total) as revenue from orders o join customers c on c.id = o.customer_id where o.status = $1 group by c.country order by revenue desc limit 3",
        ["params"] = new object[] { "delivered" },
    });
    await Call("Trying to delete (a read-only agent is refused)", "query", new() { ["connection"] = "shop", ["sql"] = "delete from orders where status = 'cancelled'" });
    await Call("Two statements in one call", "query", new() { ["connection"] = "shop", ["sql"] = "select 1; drop table orders" });
}
