using System.Net;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Demo;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>A policy directory for one test class: the policy file, a dev issuer key, a password file and a state store path.</summary>
public sealed class TestGateway
{
    /// <summary>The demo's agents, plus one narrow agent and a group.</summary>
    public const string DefaultAgents = DemoFiles.AgentGrants + "\n" + """
          narrow:
            grants:
              - connection: shop
                access: read
                tables: [public.orders]
        groups:
          finance:
            grants:
              - connection: shop
                access: read
                tables: [public.payments]
        """;

    private TestGateway(string directory, string policyPath)
    {
        Directory = directory;
        PolicyPath = policyPath;
        Policy = PolicyLoader.LoadFile(policyPath);
    }

    public string Directory { get; }

    public string PolicyPath { get; }

    public GatewayPolicy Policy { get; }

    /// <param name="issuers">More entries for the issuers list (YAML, starting with "- issuer: ..."), after the dev issuer.</param>
    /// <param name="devIssuer">The dev issuer's agents and groups lists (YAML); with more issuers and none given, it may name any.</param>
    public static TestGateway Create(PostgresFixture pg, string agents = DefaultAgents, string? gateway = null, string? connectionSettings = null, string? issuers = null, string? devIssuer = null) =>
        Create(pg.GatewayConnectionString, pg.GatewayPassword, agents, gateway, connectionSettings, issuers, devIssuer);

    public static TestGateway Create(
        string connectionString, string password, string agents = DefaultAgents, string? gateway = null, string? connectionSettings = null, string? issuers = null, string? devIssuer = null)
    {
        devIssuer ??= issuers is null ? "" : "agents: any\ngroups: any";
        var directory = TestDirectory.Create("gw");
        DemoFiles.WriteSecret(Path.Combine(directory, "shop.password"), password);
        var policy = $"""
            gateway:
              state: state.db
            {Indent(gateway ?? "")}
            connections:
              shop:
                connection_string: "{connectionString}"
                password_file: shop.password
            {Indent(Indent(connectionSettings ?? ""))}
            issuers:
              - issuer: gatehouse-dev
                audience: gatehouse
                dev_key_file: dev-issuer.pem
                clock_skew: 0s
            {Indent(Indent(devIssuer))}
            {Indent(issuers ?? "")}
            {agents}
            """;
        var path = Path.Combine(directory, "gatehouse.yaml");
        File.WriteAllText(path, policy);
        return new TestGateway(directory, path);
    }

    /// <summary>Makes the gateway's state, as its first start does: admin commands act only on state that exists.</summary>
    public async Task CreateStateAsync() => await GatewayState.OpenAsync(Policy, CancellationToken.None);

    /// <summary>The same directory with its policy file read again (after a test edited it).</summary>
    public static TestGateway Reload(TestGateway gateway) => new(gateway.Directory, gateway.PolicyPath);

    public string Mint(string agent, IReadOnlyList<string>? groups = null, TimeSpan? lifetime = null, DateTimeOffset? issuedAt = null, IReadOnlyDictionary<string, object>? claims = null)
    {
        var issuer = Policy.Issuers[0];
        return DevIssuer.Mint(issuer, DevIssuer.LoadOrCreateKey(issuer.Keys.DevKeyFile!), agent, groups ?? [], lifetime ?? TimeSpan.FromMinutes(10), issuedAt ?? DateTimeOffset.UtcNow, claims);
    }

    /// <summary>A token for the admin API and web console: the dev issuer, minted for <paramref name="audience"/>.</summary>
    public string MintAdmin(string person, IReadOnlyList<string>? groups = null, string audience = "gatehouse-admin")
    {
        var issuer = Policy.Issuers[0] with { Audiences = [audience] };
        return DevIssuer.Mint(issuer, DevIssuer.LoadOrCreateKey(issuer.Keys.DevKeyFile!), person, groups ?? [], TimeSpan.FromMinutes(10), DateTimeOffset.UtcNow);
    }

    /// <summary>A free TCP port on loopback, for a server a test starts.</summary>
    public static int FreePort()
    {
        using var socket = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        socket.Start();
        return ((System.Net.IPEndPoint)socket.LocalEndpoint).Port;
    }

    /// <summary>
    /// An HttpListener started on a free loopback port, and the port. The port is free when chosen but bound only by Start,
    /// so another process may take it in between: then a new one is tried.
    /// </summary>
    public static (HttpListener Listener, int Port) Listen(Func<int, string> prefix)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort();
            var listener = new HttpListener();
            listener.Prefixes.Add(prefix(port));
            try
            {
                listener.Start();
                return (listener, port);
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                listener.Close();
            }
        }
    }

    private static string Indent(string text) =>
        string.Join("\n", text.Split('\n').Select(line => "  " + line));
}
