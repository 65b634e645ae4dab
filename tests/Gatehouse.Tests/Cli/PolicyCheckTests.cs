using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.EndToEnd;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Cli;

/// <summary><c>gatehouse policy check</c>: a policy file validated as CI would, and against the live database.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PolicyCheckTests(PostgresFixture pg)
{
    private readonly TestGateway _gateway = TestGateway.Create(
        pg,
        connectionSettings: "tags: { public.customers.email: email }",
        agents: TestGateway.DefaultAgents);

    private static Task<(int ExitCode, string Stdout, string Stderr)> Gatehouse(params string[] arguments) => StdioTests.RunGatehouse(arguments);

    [Fact]
    public async Task A_valid_policy_passes_with_its_hash_and_what_it_holds()
    {
        var (exitCode, stdout, _) = await Gatehouse("policy", "check", "--config", _gateway.PolicyPath);

        Assert.Equal(ExitCodes.Ok, exitCode);
        Assert.Contains($"({_gateway.Policy.Hash}) is valid: 1 connection, 1 issuer", stdout);
        Assert.DoesNotContain("note:", stdout);
    }

    [Fact]
    public async Task A_guardrail_on_an_agent_the_policy_names_nowhere_else_is_noted_without_failing_the_check()
    {
        var noted = Path.Combine(_gateway.Directory, $"noted-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(noted, File.ReadAllText(_gateway.PolicyPath) + "\nguardrails:\n  - id: no-deletes\n    match: { kinds: [delete], agents: [ops-bto] }\n    outcome: deny\n");

        var (exitCode, stdout, _) = await Gatehouse("policy", "check", "--config", noted);

        Assert.Equal(ExitCodes.Ok, exitCode);
        Assert.Contains("note: guardrail 'no-deletes' matches agent 'ops-bto', whom the policy names nowhere else", stdout);
    }

    [Theory]
    [InlineData("access: read", "access: everything", "access 'everything' is not known")]
    [InlineData("connection: shop", "connection: nowhere", "nowhere")]
    [InlineData("clock_skew: 0s", "clock_skew: soon", "clock_skew must be a duration")]
    [InlineData("audience: gatehouse", "audience: gatehouse\n    colour: blue", "colour")]
    [InlineData("connections:", "connections: [", "not valid YAML")]
    public async Task Each_kind_of_error_is_reported_with_file_and_line_and_fails_the_check(string find, string replace, string message)
    {
        var bad = Path.Combine(_gateway.Directory, $"bad-{Guid.NewGuid():N}.yaml");
        var text = File.ReadAllText(_gateway.PolicyPath);
        Assert.Contains(find, text);
        File.WriteAllText(bad, text.Replace(find, replace));

        var (exitCode, stdout, stderr) = await Gatehouse("policy", "check", "--config", bad);

        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.DoesNotContain("is valid", stdout);
        Assert.Matches($@"{Path.GetFileName(bad)}:\d+:\d+: ", stderr);
        Assert.Contains(message, stderr);
    }

    [Fact]
    public async Task A_file_nested_a_hundred_thousand_deep_is_an_error_not_a_crash()
    {
        // Parsed into a tree as it stood, this overflowed the stack: a crash no handler can catch, in a hot reload too.
        var deep = Path.Combine(_gateway.Directory, $"deep-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(deep, File.ReadAllText(_gateway.PolicyPath) + "\nx: " + new string('[', 100_000) + new string(']', 100_000) + "\n");

        var (exitCode, _, stderr) = await Gatehouse("policy", "check", "--config", deep);

        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Matches($@"{Path.GetFileName(deep)}:\d+:\d+: lists and mappings nest more than 64 deep", stderr);
    }

    [Fact]
    public async Task Against_the_database_everything_the_policy_names_must_exist()
    {
        var (exitCode, stdout, stderr) = await Gatehouse("policy", "check", "--config", _gateway.PolicyPath, "--connection", "shop");
        Assert.True(exitCode == ExitCodes.Ok, stderr);
        Assert.Contains("connection shop: everything the policy names exists.", stdout);

        var drifted = Path.Combine(_gateway.Directory, "drifted.yaml");
        File.WriteAllText(drifted, File.ReadAllText(_gateway.PolicyPath)
            .Replace("public.customers.email: email", "public.customers.email: email, public.customers.e_mail: email, public.clients.email: email")
            .Replace("tables: [public.orders]", "tables: [public.orders, public.ordrs]")
            + "\nguardrails:\n  - id: big-orders\n    match: { tables: [public.Orders] }\n    outcome: deny\n");

        (exitCode, stdout, _) = await Gatehouse("policy", "check", "--config", drifted, "--connection", "shop");

        Assert.Equal(ExitCodes.Drift, exitCode);
        Assert.Contains("tag public.customers.e_mail (email): table public.customers has no column 'e_mail'", stdout);
        Assert.Contains("tag public.clients.email (email): table public.clients does not exist", stdout);
        Assert.Contains("a grant names table public.ordrs, which does not exist", stdout);
        Assert.Contains("guardrail 'big-orders': names table public.Orders, which does not exist (names are case-sensitive: the database has public.orders)", stdout);
        var problems = stdout.Split('\n').Count(l => l.StartsWith("connection shop: ", StringComparison.Ordinal) && (l.Contains("does not exist") || l.Contains("has no column")));
        Assert.True(problems >= 4, stdout);
        Assert.Contains($"connection shop: {problems} problems.", stdout);
    }

    [Fact]
    public async Task An_unknown_connection_is_refused_by_name()
    {
        var (exitCode, _, stderr) = await Gatehouse("policy", "check", "--config", _gateway.PolicyPath, "--connection", "warehouse");

        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Contains("the policy has no connection 'warehouse' (it has: shop)", stderr);
    }
}
