using Gatehouse.Connectors.Postgres;
using Gatehouse.McpServer.Demo;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>
/// A PostgreSQL of a test class's own (to stop, reconfigure or run at another version) holding the sample shop as
/// database 'shop' and the gateway's role 'gatehouse_gateway'. Removed with its directory when disposed.
/// </summary>
public sealed class ShopServer : IAsyncDisposable
{
    private ShopServer(LocalPostgresServer server, string password)
    {
        Server = server;
        GatewayPassword = password;
    }

    public LocalPostgresServer Server { get; }

    public string GatewayPassword { get; }

    public static async Task<ShopServer> StartAsync(string name, string? binDirectory = null)
    {
        NpgsqlSettings.ApplySwitches();
        var server = await LocalPostgresServer.StartAsync(TestDirectory.Create(name), CancellationToken.None, binDirectory);
        try
        {
            return new ShopServer(server, await ShopDatabase.CreateAsync(server.AdminConnectionString, "shop", "gatehouse_gateway", CancellationToken.None));
        }
        catch
        {
            await new ShopServer(server, "").DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        TestDirectory.Remove(Server.Directory);
    }
}
