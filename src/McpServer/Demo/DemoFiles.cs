using System.Text.Json;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Demo;

/// <summary>Writes the demo's policy, password file and agent tokens into its directory.</summary>
public static class DemoFiles
{
    public static readonly string[] Agents = ["analyst", "ops-bot"];

    /// <summary>The demo's agents: analyst reads the shop; ops-bot also writes orders.</summary>
    public const string AgentGrants = """
        agents:
          analyst:
            grants:
              - connection: shop
                access: read
                schemas: [public]
          ops-bot:
            grants:
              - connection: shop
                access: read
                schemas: [public]
              - connection: shop
                access: write
                tables: [public.orders]
        """;

    public static string PolicyYaml(int port) => $"""
        # Written by `gatehouse demo`. The shop runs on a throwaway PostgreSQL on port {port}.
        gateway:
          state: gatehouse-state.db
        connections:
          shop:
            connection_string: "Host=127.0.0.1;Port={port};Database=shop;Username=gatehouse_gateway"
            password_file: shop.password
            # Strict masking: `gatehouse setup` (run by the demo) made a PostgreSQL role and masked views per profile.
            tags:
              public.customers.email: email
              public.customers.phone: phone
              public.customers.ssn: ssn
              public.customers.card_number: card
            strategies:
              ssn: token
        issuers:
          - issuer: gatehouse-dev
            audience: gatehouse
            dev_key_file: dev-issuer.pem
        {AgentGrants}
        # The web console (/admin) and the admin API: tokens minted for this audience, naming an admin.
        admin:
          audience: gatehouse-admin
          users: [{AdminName}]
        """;

    /// <summary>The demo's admin, who signs in to the web console with tokens/admin.token.</summary>
    public const string AdminName = "admin";

    /// <summary>Writes gatehouse.yaml, shop.password, tokens.json, tokens/NAME.token and tokens/admin.token; returns the policy path and the agent tokens.</summary>
    public static (string PolicyPath, Dictionary<string, string> Tokens) Write(string directory, int port, string gatewayPassword, TimeSpan tokenLifetime)
    {
        WriteSecret(Path.Combine(directory, "shop.password"), gatewayPassword);
        var policyPath = Path.Combine(directory, "gatehouse.yaml");
        File.WriteAllText(policyPath, PolicyYaml(port) + Environment.NewLine);

        var policy = PolicyLoader.LoadFile(policyPath);
        var issuer = policy.Issuers[0];
        var key = DevIssuer.LoadOrCreateKey(issuer.Keys.DevKeyFile!);
        var tokens = Agents.ToDictionary(a => a, a => DevIssuer.Mint(issuer, key, a, [], tokenLifetime, DateTimeOffset.UtcNow));
        WriteSecret(Path.Combine(directory, "tokens.json"), JsonSerializer.Serialize(tokens, new JsonSerializerOptions { WriteIndented = true }));
        Directory.CreateDirectory(Path.Combine(directory, "tokens"));
        foreach (var (agent, token) in tokens)
        {
            WriteSecret(Path.Combine(directory, "tokens", agent + ".token"), token);
        }

        var adminIssuer = issuer with { Audiences = [policy.Admin!.Audience] };
        WriteSecret(Path.Combine(directory, "tokens", AdminName + ".token"), DevIssuer.Mint(adminIssuer, key, AdminName, [], tokenLifetime, DateTimeOffset.UtcNow));

        return (policyPath, tokens);
    }

    /// <summary>Writes a file only its owner can read.</summary>
    public static void WriteSecret(string path, string content)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var writer = new StreamWriter(path, options);
        writer.Write(content);
    }
}
