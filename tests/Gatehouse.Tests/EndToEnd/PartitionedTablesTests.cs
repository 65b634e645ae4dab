using Gatehouse.Tests.Infrastructure;
using ModelContextProtocol.Client;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// A plan scans a partitioned table's partitions, never the table, and an inheritance child's rows under the child's own
/// name: tags, grants and guardrails written for the table hold on them (overlay masking, no database objects).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PartitionedTablesTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Secret = "536-22-4821";

    private const string Policy = """
        agents:
          analyst:
            grants:
              - connection: shop
                access: read
                schemas: [lineage]
          outsider:
            grants:
              - connection: shop
                access: read
                schemas: [public]
          clerk:
            grants:
              - connection: shop
                access: write
                tables: [lineage.tenants]
          archivist:
            grants:
              - connection: shop
                access: read
                schemas: [lineage]
              - connection: shop
                access: write
                tables: [lineage.people]
        guardrails:
          - id: tenants-by-hand
            match: { tables: [lineage.tenants], operations: [delete] }
            outcome: deny
            message: Tenants are removed by people
        """;

    private const string Tags = """
        masking: overlay
        tags:
          lineage.tenants.tax_id: ssn
          lineage.people.ssn: ssn
        """;

    private TestGateway _gateway = null!;
    private HttpGateway _server = null!;

    public async Task InitializeAsync()
    {
        foreach (var statement in new[]
        {
            "drop schema if exists lineage cascade",
            "create schema lineage",
            "create table lineage.tenants (id int, name text, tax_id text) partition by range (id)",
            "create table lineage.tenants_low partition of lineage.tenants for values from (0) to (100)",
            "create table lineage.tenants_high partition of lineage.tenants for values from (100) to (200)",
            $"insert into lineage.tenants values (1, 'Acme', '{Secret}')",
            "create table lineage.people (id int, ssn text)",
            "create table lineage.people_archive (note text) inherits (lineage.people)",
            $"insert into lineage.people_archive values (2, '{Secret}', 'moved')",
            $"grant usage on schema lineage to {pg.GatewayRole}",
            $"grant select, delete on all tables in schema lineage to {pg.GatewayRole}",
        })
        {
            await pg.AdminScalarAsync(statement);
        }

        _gateway = TestGateway.Create(pg, Policy, connectionSettings: Tags);
        _server = await HttpGateway.StartAsync(_gateway);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await pg.AdminScalarAsync("drop schema lineage cascade");
    }

    [Theory]
    [InlineData("select tax_id from lineage.tenants")]
    [InlineData("select tax_id from lineage.tenants_low")]
    [InlineData("select * from lineage.tenants")]
    [InlineData("select ssn from lineage.people_archive")]
    [InlineData("select ssn from lineage.people")]
    [InlineData("select id from lineage.people_archive where ssn like '536%'")]
    public async Task A_tag_on_a_table_holds_on_its_partitions_and_inheritance_children(string sql)
    {
        await using var analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var result = await analyst.QueryAsync(sql);
        Assert.Equal("masking.tagged_column", result.Rule());
        Assert.DoesNotContain(Secret, result.Text(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Untagged_columns_of_partitions_and_children_are_readable()
    {
        await using var analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        Assert.Equal("Acme", (await analyst.QueryAsync("select name from lineage.tenants")).Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("moved", (await analyst.QueryAsync("select note from lineage.people_archive")).Structured().GetProperty("rows")[0][0].GetString());
    }

    [Fact]
    public async Task A_grant_on_a_partitioned_table_covers_its_partitions_but_a_parents_grant_does_not_cover_an_inheritance_child()
    {
        await using var clerk = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("clerk"));
        Assert.Equal("Acme", (await clerk.QueryAsync("select name from lineage.tenants")).Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("Acme", (await clerk.QueryAsync("select name from lineage.tenants_low")).Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("grant.relation_not_granted", (await clerk.QueryAsync("select note from lineage.people_archive")).Rule());
    }

    [Fact]
    public async Task Writing_a_table_writes_its_inheritance_children_which_need_a_write_grant_of_their_own()
    {
        // The plan scans the child as a read and names it as written only among the ModifyTable's targets: a read grant on
        // the child let a delete through the parent remove its rows.
        await using var archivist = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("archivist"));

        var result = await archivist.QueryAsync("delete from lineage.people where id = 2");

        Assert.Equal("grant.relation_read_only", result.Rule());
        Assert.Contains("lineage.people_archive", result.Text(), StringComparison.Ordinal);
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from lineage.people_archive"));
        Assert.NotEqual(true, (await archivist.QueryAsync("delete from only lineage.people where id = 2")).IsError);
    }

    [Fact]
    public async Task Partitions_the_plan_would_prune_as_it_starts_are_checked_all_the_same()
    {
        // EXPLAIN does not set gatehouse.agent and the run does: with pruning, EXPLAIN's plan started with no partition left
        // (no relation to check), and the run read them all.
        await using var outsider = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("outsider"));
        var result = await outsider.QueryAsync("select name from lineage.tenants where id < case when current_setting('gatehouse.agent', true) = 'outsider' then 1000 else -1 end");
        Assert.Equal("grant.relation_not_granted", result.Rule());
        Assert.DoesNotContain("Acme", result.Text(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Partitions_pruned_by_a_constant_in_planning_stay_out_of_the_plan()
    {
        // Planning prunes by constants for EXPLAIN and the run alike; a plan of every partition would count rows it cannot touch.
        await using var analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        var result = await analyst.QueryAsync("select name from lineage.tenants where id = 150");
        Assert.NotEqual(true, result.IsError);
        var record = await _server.State.GetAsync(result.AuditId(), CancellationToken.None);
        Assert.Contains("tenants_high", record!.Classification, StringComparison.Ordinal);
        Assert.DoesNotContain("tenants_low", record.Classification, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_table_made_an_inheritance_child_later_is_checked_as_one_from_then_on()
    {
        await pg.AdminScalarAsync("create table lineage.loose (id int, ssn text)");
        await pg.AdminScalarAsync($"grant select on lineage.loose to {pg.GatewayRole}");
        await using var analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        const string sql = "select ssn from lineage.loose";

        // Planned once the catalog watch has a version, so the plan is cached; then the table joins a tagged parent.
        Assert.NotEqual(true, (await analyst.QueryAsync(sql)).IsError);
        await Task.Delay(3 * Gatehouse.Connectors.Postgres.PostgresCatalogVersions.PollInterval);
        Assert.NotEqual(true, (await analyst.QueryAsync(sql)).IsError);
        await pg.AdminScalarAsync("alter table lineage.loose inherit lineage.people");

        var refused = false;
        for (var i = 0; i < 40 && !refused; i++)
        {
            var result = await analyst.QueryAsync(sql);
            refused = result.IsError == true && result.Rule() == "masking.tagged_column";
            await Task.Delay(refused ? 0 : 100);
        }

        Assert.True(refused, "the cached plan outlived the table's becoming a child of a table with a tagged column");
    }

    [Theory]
    [InlineData("delete from lineage.tenants where id = 1")]
    [InlineData("delete from lineage.tenants_low where id = 1")]
    public async Task A_guardrail_on_a_partitioned_table_holds_on_its_partitions(string sql)
    {
        await using var clerk = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("clerk"));
        Assert.Equal("guard.tenants-by-hand", (await clerk.QueryAsync(sql)).Rule());
        Assert.Equal(1L, await pg.AdminScalarAsync("select count(*) from lineage.tenants"));
    }
}
