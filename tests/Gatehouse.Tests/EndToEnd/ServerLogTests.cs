using System.Text;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// The statement probe prints each statement's parse tree as a LOG message, which PostgreSQL's server log takes at its
/// default log_min_messages: the literals an agent searches for (an email, an SSN) would land in a log its DBAs read.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ServerLogTests(PostgresFixture pg)
{
    private static string Marker() => "probe-marker-" + Guid.NewGuid().ToString("N");

    // A tree prints a text constant as its bytes in decimal ("[ 36 0 0 0 112 114 ... ]"); look for that and for the text.
    private bool Logged(string marker)
    {
        var log = pg.ReadServerLog();
        return log.Contains(marker, StringComparison.Ordinal) || log.Contains(string.Join(' ', Encoding.ASCII.GetBytes(marker)), StringComparison.Ordinal);
    }

    /// <summary>A login role of its own that may read the shop's orders, and nothing else: no SET on log_min_messages.</summary>
    private async Task<TestGateway> GatewayWithPlainRoleAsync(string? connectionSettings = null)
    {
        var role = "plain_" + Guid.NewGuid().ToString("N")[..8];
        await pg.AdminScalarAsync($"CREATE ROLE {role} LOGIN PASSWORD 'plain-password'");
        await pg.AdminScalarAsync($"GRANT CONNECT ON DATABASE \"{pg.Database}\" TO {role}");
        await pg.AdminScalarAsync($"GRANT USAGE ON SCHEMA public TO {role}");
        await pg.AdminScalarAsync($"GRANT SELECT ON public.orders TO {role}");
        return TestGateway.Create(pg.GatewayConnectionString.Replace($"Username={pg.GatewayRole}", $"Username={role}"), "plain-password", connectionSettings: connectionSettings);
    }

    [Fact]
    public async Task A_checked_statements_literals_stay_out_of_the_server_log()
    {
        var gateway = TestGateway.Create(pg);
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var agent = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        var marker = Marker();

        var result = await agent.QueryAsync($"select count(*) from orders where status = '{marker}'");

        Assert.NotEqual(true, result.IsError);
        Assert.False(Logged(marker));
    }

    [Fact]
    public async Task A_login_role_that_may_not_quiet_the_log_is_refused_saying_how_to_grant_it()
    {
        var gateway = await GatewayWithPlainRoleAsync();
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var agent = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        var marker = Marker();

        var result = await agent.QueryAsync($"select count(*) from orders where status = '{marker}'");

        Assert.True(result.IsError);
        Assert.Contains("may not set log_min_messages", result.Text());
        Assert.Contains("GRANT SET ON PARAMETER log_min_messages", result.Text());
        Assert.False(Logged(marker));
    }

    [Fact]
    public async Task A_connection_that_accepts_parse_trees_in_the_log_runs_without_the_grant_and_the_tree_is_logged()
    {
        var gateway = await GatewayWithPlainRoleAsync("log_parse_trees: true");
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var agent = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        var marker = Marker();

        var result = await agent.QueryAsync($"select count(*) from orders where status = '{marker}'");

        Assert.NotEqual(true, result.IsError);
        // What the other tests look for is there when the log is not quieted: the literal, in the tree's constant.
        Assert.True(Logged(marker));
    }
}
