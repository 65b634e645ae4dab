using Gatehouse.Connectors.Postgres;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// Overlay masking against the shop: exfiltration attempts by an agent without unmask rights are refused wherever the tagged
/// column hides in the statement, and no raw value, nor its reverse or base64, appears anywhere in the response.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class OverlayMaskingTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Tags = "masking: overlay\n" + ExfiltrationCorpus.Tags;

    private const string Agents = ExfiltrationCorpus.Readers;

    private readonly TestGateway _gateway = TestGateway.Create(pg, Agents, connectionSettings: Tags);
    private HttpGateway _server = null!;
    private McpClient _analyst = null!;
    private IReadOnlyList<string> _secrets = [];

    public async Task InitializeAsync()
    {
        _server = await HttpGateway.StartAsync(_gateway);
        _analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        _secrets = await ExfiltrationCorpus.SecretsAsync(pg);
    }

    public async Task DisposeAsync()
    {
        await _analyst.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Theory]
    [MemberData(nameof(ExfiltrationCorpus.Attempts), MemberType = typeof(ExfiltrationCorpus))]
    public async Task An_agent_without_unmask_rights_gets_no_tagged_value_out(string sql)
    {
        var result = await _analyst.QueryAsync(sql, ExfiltrationCorpus.Parameters(sql));
        Assert.True(result.IsError, $"expected a refusal, got {result.Text()}");
        Assert.Matches("^(masking.tagged_column|grant\\.|function\\.|database\\.|sql\\.unreadable)", result.Rule());
        AssertNoSecret(result);
    }

    [Fact]
    public async Task A_statement_classified_with_one_parameter_value_is_classified_again_for_another()
    {
        // PostgreSQL plans with the values bound: coalesce('x', ssn) is folded to 'x' and reads no ssn; with null it does.
        const string sql = "select id, coalesce($1, ssn) as v from customers where id = 1";
        Assert.Equal("x", (await _analyst.QueryAsync(sql, ["x"])).Structured().GetProperty("rows")[0][1].GetString());

        // Once the catalog watch has a version (its first poll is at once), the plan is cached.
        await Task.Delay(3 * PostgresCatalogVersions.PollInterval);
        Assert.Equal("x", (await _analyst.QueryAsync(sql, ["x"])).Structured().GetProperty("rows")[0][1].GetString());

        var raw = await _analyst.QueryAsync(sql, [null]);
        Assert.Equal("masking.tagged_column", raw.Rule());
        AssertNoSecret(raw);
    }

    [Fact]
    public async Task Statistics_which_hold_sampled_values_of_tagged_columns_are_refused_without_every_unmask_right()
    {
        await pg.AdminScalarAsync("analyze customers");
        var gateway = TestGateway.Create(pg, Agents.Replace("schemas: [public]", "schemas: [public, pg_catalog]", StringComparison.Ordinal), connectionSettings: Tags);
        await using var server = await HttpGateway.StartAsync(gateway);
        const string sql = "select attname, most_common_vals::text, histogram_bounds::text from pg_stats where tablename = 'customers'";

        await using var analyst = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
        var refused = await analyst.QueryAsync(sql);
        Assert.Equal("masking.tagged_column", refused.Rule());
        Assert.Contains("pg_statistic", refused.Text(), StringComparison.Ordinal);
        AssertNoSecret(refused);

        // Who may see every class unmasked may see the statistics too, and they do hold the values.
        await using var auditor = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("auditor"));
        var statistics = (await auditor.QueryAsync(sql)).Text();
        Assert.Contains(_secrets, s => statistics.Contains(s, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Untagged_columns_of_a_tagged_table_are_readable()
    {
        var result = await _analyst.QueryAsync("select id, full_name, country from customers where country = $1 order by id", ["US"]);
        Assert.NotEqual(true, result.IsError);
        Assert.Equal("Amelia Hartmann", result.Structured().GetProperty("rows")[0][1].GetString());
        AssertNoSecret(result);
    }

    [Fact]
    public async Task Unmask_rights_let_exactly_their_classes_through()
    {
        await using var support = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("support"));
        var contact = await support.QueryAsync("select email, phone from customers where id = 1");
        Assert.Equal("amelia.hartmann@example.com", contact.Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("masking.tagged_column", (await support.QueryAsync("select ssn from customers where id = 1")).Rule());

        await using var auditor = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("auditor"));
        var all = await auditor.QueryAsync("select ssn, card_number from customers where id = 1");
        Assert.Equal("536-22-4821", all.Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("4111111111111111", all.Structured().GetProperty("rows")[0][1].GetString());
    }

    [Fact]
    public async Task An_approved_unmask_request_lets_its_class_through_until_it_is_revoked()
    {
        var id = (await _analyst.RequestAccessAsync([], "unmask:ssn", "verify identity for a fraud case")).Structured().GetProperty("request_id").GetString()!;
        Assert.Equal("masking.tagged_column", (await _analyst.QueryAsync("select ssn from customers where id = 1")).Rule());
        Assert.Equal(0, (await StdioTests.RunGatehouse(["approvals", "approve", id, "--config", _gateway.PolicyPath, "--as", "alice"])).ExitCode);
        Assert.Equal("536-22-4821", (await _analyst.QueryAsync("select ssn from customers where id = 1")).Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("masking.tagged_column", (await _analyst.QueryAsync("select email from customers where id = 1")).Rule());

        Assert.Equal(0, (await StdioTests.RunGatehouse(["grants", "revoke", id, "--config", _gateway.PolicyPath, "--as", "alice"])).ExitCode);
        Assert.Equal("masking.tagged_column", (await _analyst.QueryAsync("select ssn from customers where id = 1")).Rule());
        Assert.Equal("request.bad_access", (await _analyst.RequestAccessAsync([], "unmask:all", "everything")).Rule());
        var withTables = await _analyst.RequestAccessAsync(["public.payments"], "unmask:email", "check a payment's contact");
        Assert.Equal("request.bad_tables", withTables.Rule());
        Assert.Contains("names no tables or schemas", withTables.Text());
    }

    [Fact]
    public async Task Describe_schema_says_which_columns_are_sensitive_and_masked_for_the_caller()
    {
        var result = await _analyst.CallToolAsync("describe_schema", new Dictionary<string, object?> { ["connection"] = "shop", ["table"] = "customers" });
        var columns = result.Structured().GetProperty("tables")[0].GetProperty("columns").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.Equal("ssn", columns["ssn"].GetProperty("sensitive").GetString());
        Assert.True(columns["ssn"].GetProperty("masked_for_you").GetBoolean());
        Assert.False(columns["full_name"].TryGetProperty("sensitive", out _));
    }

    [Fact]
    public async Task Describe_schema_marks_an_inheritance_childs_columns_with_its_parents_tags()
    {
        await pg.AdminScalarAsync("create table public.people (id int, ssn text)");
        await pg.AdminScalarAsync("create table public.people_archive (archived date) inherits (public.people)");
        await pg.AdminScalarAsync($"grant select on public.people, public.people_archive to {pg.GatewayRole}");
        try
        {
            var gateway = TestGateway.Create(pg, Agents, connectionSettings: "masking: overlay\ntags:\n  public.people.ssn: ssn");
            await using var server = await HttpGateway.StartAsync(gateway);
            await using var analyst = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
            var result = await analyst.CallToolAsync("describe_schema", new Dictionary<string, object?> { ["connection"] = "shop", ["table"] = "people_archive" });
            var columns = result.Structured().GetProperty("tables")[0].GetProperty("columns").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
            Assert.Equal("ssn", columns["ssn"].GetProperty("sensitive").GetString());
            Assert.True(columns["ssn"].GetProperty("masked_for_you").GetBoolean());
            Assert.False(columns["archived"].TryGetProperty("sensitive", out _));
            Assert.Equal("masking.tagged_column", (await analyst.QueryAsync("select ssn from people_archive")).Rule());
        }
        finally
        {
            await pg.AdminScalarAsync("drop table public.people cascade");
        }
    }

    [Fact]
    public async Task A_mistyped_tag_stops_the_connection_instead_of_leaving_the_real_column_open()
    {
        var typo = TestGateway.Create(pg, Agents, connectionSettings: Tags.Replace("public.customers.ssn: ssn", "public.customers.snn: ssn"));
        await using var server = await HttpGateway.StartAsync(typo);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, typo.Mint("analyst"));
        var result = await client.QueryAsync("select ssn from customers");
        Assert.Equal("masking.tags_out_of_sync", result.Rule());
        Assert.Contains("public.customers.snn", result.Text());
        AssertNoSecret(result);
    }

    [Fact]
    public async Task An_untagged_generated_column_computed_from_a_tagged_one_stops_the_connection_until_it_is_tagged()
    {
        // PostgreSQL 18 computes a generated column when it is read (virtual); earlier ones store it.
        var kind = Convert.ToInt32(await pg.AdminScalarAsync("select current_setting('server_version_num')")) >= 180000 ? "virtual" : "stored";
        await pg.AdminScalarAsync($"create table public.patients (id int primary key, ssn text, ssn_last4 text generated always as (right(ssn, 4)) {kind})");
        await pg.AdminScalarAsync("insert into public.patients (id, ssn) values (1, '078-05-1120')");
        await pg.AdminScalarAsync("grant select on public.patients to " + pg.GatewayRole);
        try
        {
            const string tags = "masking: overlay\ntags:\n  public.patients.ssn: ssn";
            var untagged = TestGateway.Create(pg, Agents, connectionSettings: tags);
            await using (var server = await HttpGateway.StartAsync(untagged))
            await using (var client = await GatewayClients.HttpAsync(server.Endpoint, untagged.Mint("analyst")))
            {
                var refused = await client.QueryAsync("select ssn_last4 from patients");
                Assert.Equal("masking.tags_out_of_sync", refused.Rule());
                Assert.Contains("generated column public.patients.ssn_last4 is computed from public.patients.ssn, tagged ssn", refused.Text());
                Assert.DoesNotContain("1120", refused.Text());

                var check = await StdioTests.RunGatehouse(["policy", "check", "--config", untagged.PolicyPath, "--connection", "shop"]);
                Assert.Equal(ExitCodes.Drift, check.ExitCode);
                Assert.Contains("generated column public.patients.ssn_last4 is computed from public.patients.ssn, tagged ssn, but has no tag of its own", check.Stdout);
            }

            var tagged = TestGateway.Create(pg, Agents, connectionSettings: tags + "\n  public.patients.ssn_last4: ssn");
            await using (var server = await HttpGateway.StartAsync(tagged))
            await using (var client = await GatewayClients.HttpAsync(server.Endpoint, tagged.Mint("analyst")))
            {
                Assert.Equal("masking.tagged_column", (await client.QueryAsync("select ssn_last4 from patients")).Rule());
                Assert.Equal(1, (await client.QueryAsync("select id from patients")).Structured().GetProperty("rows")[0][0].GetInt32());

                // An inheritance child has its parent's tags, and may compute a generated column of its own from them.
                await pg.AdminScalarAsync("create table public.patients_archive (ssn_area text generated always as (left(ssn, 3)) stored) inherits (public.patients)");
                await pg.AdminScalarAsync("grant select on public.patients_archive to " + pg.GatewayRole);
                // The catalog change is seen within a second (the version is polled every 250 ms).
                var child = await client.QueryAsync("select ssn_area from patients_archive");
                for (var tries = 0; child.IsError != true && tries < 20; tries++)
                {
                    await Task.Delay(PostgresCatalogVersions.PollInterval);
                    child = await client.QueryAsync("select ssn_area from patients_archive");
                }

                Assert.Equal("masking.tags_out_of_sync", child.Rule());
                Assert.Contains("generated column public.patients_archive.ssn_area is computed from public.patients_archive.ssn, tagged ssn", child.Text());
            }
        }
        finally
        {
            await pg.AdminScalarAsync("drop table public.patients cascade");
        }
    }

    [Fact]
    public async Task A_merge_or_upsert_whose_plan_hides_what_it_reads_of_a_tagged_table_is_refused()
    {
        // A clerk who may write members but not see their SSNs: MERGE's WHEN conditions and an upsert's SET list read the
        // target row, and EXPLAIN prints neither, so the tagged column would pass unseen.
        await pg.AdminScalarAsync("create table public.members (id int primary key, full_name text, ssn text)");
        await pg.AdminScalarAsync("insert into public.members values (1, 'Mia Member', '111-22-3333')");
        await pg.AdminScalarAsync($"grant select, insert, update on public.members to {pg.GatewayRole}");
        await pg.AdminScalarAsync("create table public.readings (id int, part int, note text, ssn text, primary key (id, part)) partition by list (part)");
        await pg.AdminScalarAsync("create table public.readings_1 partition of public.readings for values in (1)");
        await pg.AdminScalarAsync("insert into public.readings values (1, 1, 'first', '777-88-9999')");
        await pg.AdminScalarAsync($"grant select, insert, update on public.readings, public.readings_1 to {pg.GatewayRole}");
        try
        {
            var writer = TestGateway.Create(
                pg,
                Agents + "\n  clerk:\n    grants:\n      - connection: shop\n        access: write\n        tables: [public.members, public.readings, public.orders]\n      - connection: shop\n        access: read\n        schemas: [public]",
                connectionSettings: Tags + "\n  public.members.ssn: ssn\n  public.readings_1.ssn: ssn");
            await using var server = await HttpGateway.StartAsync(writer);
            await using var clerk = await GatewayClients.HttpAsync(server.Endpoint, writer.Mint("clerk"));
            foreach (var sql in new[]
            {
                "merge into members t using (select 1 as id) s on t.id = s.id when matched and t.ssn like '1%' then update set full_name = t.full_name",
                "insert into members as m (id, full_name) values (1, 'x') on conflict (id) do update set full_name = reverse(m.ssn) returning m.full_name",
            })
            {
                var refused = await clerk.QueryAsync(sql);
                Assert.True(refused.IsError, refused.Text());
                Assert.Equal("masking.tagged_column", refused.Rule());
                Assert.Contains("MERGE or ON CONFLICT DO UPDATE on public.members", refused.Text());
                Assert.DoesNotContain("3333-22-111", refused.Text());
            }

            Assert.Equal("Mia Member", (await clerk.QueryAsync("select full_name from members")).Structured().GetProperty("rows")[0][0].GetString());

            // An upsert into a partitioned table names no partition in its plan (rows are routed as it runs), and a
            // partition may carry a tag its table does not.
            var routed = await clerk.QueryAsync("insert into readings as r (id, part, note) values (1, 1, 'x') on conflict (id, part) do update set note = reverse(r.ssn) returning r.note");
            Assert.Equal("masking.tagged_column", routed.Rule());
            Assert.Contains("on public.readings_1", routed.Text());
            Assert.DoesNotContain("9999-88-777", routed.Text());

            // The same on a table without tags is a write as any other.
            var merged = await clerk.QueryAsync("merge into orders t using (select 1 as id) s on t.id = s.id when matched then update set status = t.status");
            Assert.NotEqual(true, merged.IsError);
        }
        finally
        {
            await pg.AdminScalarAsync("drop table public.members");
            await pg.AdminScalarAsync("drop table public.readings");
        }
    }

    private void AssertNoSecret(CallToolResult result) => ExfiltrationCorpus.AssertNoSecret(result, _secrets);
}
