using System.CommandLine;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Cli;

/// <summary><c>gatehouse token mint</c>: signs a development token with the local dev issuer key the policy trusts.</summary>
public static class TokenCommand
{
    public static Command Create()
    {
        var config = CliApp.ConfigOption();
        var agent = new Option<string>("--agent") { Description = "The agent the token names.", Required = true };
        var groups = new Option<string?>("--groups") { Description = "Comma-separated groups, e.g. finance,ops." };
        var ttl = new Option<string>("--ttl") { Description = "Lifetime, e.g. 15m, 8h.", DefaultValueFactory = _ => "15m" };
        var admin = new Option<bool>("--admin") { Description = "Mint for the admin API's audience (admin.audience) instead of the agents' audience." };
        var mint = new Command("mint", "Mint a development token for an agent, or with --admin for a person using the admin API (printed to stdout).") { config, agent, groups, ttl, admin };
        mint.SetAction(CliApp.Guarded((parse, _) =>
        {
            var policy = PolicyLoader.LoadFile(parse.GetValue(config)!);
            var issuer = policy.Issuers.FirstOrDefault(i => i.Keys.DevKeyFile is not null)
                ?? throw new CliException("the policy trusts no dev issuer; add an issuer with dev_key_file to mint local tokens");
            var lifetime = Durations.Parse(parse.GetValue(ttl)!);
            if (lifetime <= TimeSpan.Zero || lifetime > TimeSpan.FromDays(30))
            {
                throw new CliException("--ttl must be between 1s and 30d");
            }

            var groupList = (parse.GetValue(groups) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parse.GetValue(admin))
            {
                issuer = issuer with { Audiences = [policy.Admin?.Audience ?? throw new CliException("the policy has no admin section, so there is no admin audience to mint for")] };
            }

            var key = DevIssuer.LoadOrCreateKey(issuer.Keys.DevKeyFile!);
            Console.Out.WriteLine(DevIssuer.Mint(issuer, key, parse.GetValue(agent)!, groupList, lifetime, DateTimeOffset.UtcNow));
            return Task.FromResult(0);
        }));
        return new Command("token", "Development tokens.") { mint };
    }
}
