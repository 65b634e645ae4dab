using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>What the audit log keeps of real calls: capture levels, and records in the PostgreSQL store.</summary>
[Collection(PostgresCollection.Name)]
public sealed class AuditStoreTests(PostgresFixture pg)
{
    [Fact]
    public async Task Full_capture_keeps_the_result_as_the_agent_received_it_masked_and_bounded()
    {
        var gateway = TestGateway.Create(pg, gateway: "audit:\n  max_capture_bytes: 1024", connectionSettings: "capture: full");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));

        var one = await client.QueryAsync("select full_name, email, ssn from customers where id = 1");
        var record = await server.Gateway.Audit.GetAsync(one.AuditId(), CancellationToken.None);
        Assert.Contains("Amelia Hartmann", record!.Result);
        Assert.Contains("[email]", record.Result);
        Assert.DoesNotContain("amelia.hartmann@example.com", record.Result);
        Assert.DoesNotContain("536-22-4821", record.Result);

        var many = await client.QueryAsync("select id, status, total from orders order by id");
        var big = await server.Gateway.Audit.GetAsync(many.AuditId(), CancellationToken.None);
        Assert.True(big!.Result!.Length <= 1024, $"{big.Result.Length} bytes");
        using var excerpt = System.Text.Json.JsonDocument.Parse(big.Result);
        Assert.Equal(many.Structured().GetProperty("row_count").GetInt32(), excerpt.RootElement.GetProperty("row_count").GetInt32());
        Assert.True(excerpt.RootElement.GetProperty("rows_kept").GetInt32() < excerpt.RootElement.GetProperty("row_count").GetInt32());
    }

    [Fact]
    public async Task A_caller_allowed_unmasked_values_gets_them_but_its_record_holds_none()
    {
        var gateway = TestGateway.Create(
            pg,
            """
            agents:
              support:
                unmask: [email]
                grants:
                  - { connection: shop, access: read, schemas: [public] }
            """,
            connectionSettings: "capture: full");
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("support"));

        var read = await client.QueryAsync("select email from customers where id = 1");
        Assert.Contains("amelia.hartmann@example.com", read.Text());
        var record = (await server.Gateway.Audit.GetAsync(read.AuditId(), CancellationToken.None))!;
        Assert.Contains("not captured", record.Result);
        Assert.DoesNotContain("amelia.hartmann@example.com", record.Result);

        // PostgreSQL echoes the value it failed to cast; the message is the record's reason too.
        var failed = await client.QueryAsync("select email::int from customers where id = 1");
        Assert.Equal("database.rejected", failed.Rule());
        var refusal = (await server.Gateway.Audit.GetAsync(failed.AuditId(), CancellationToken.None))!;
        Assert.Contains("invalid input syntax for type integer", refusal.Reason);
        Assert.DoesNotContain("amelia.hartmann@example.com", refusal.Reason);
    }

    [Fact]
    public async Task Metadata_capture_keeps_no_result()
    {
        var gateway = TestGateway.Create(pg);
        await using var server = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
        var result = await client.QueryAsync("select id from orders limit 2");
        var record = await server.Gateway.Audit.GetAsync(result.AuditId(), CancellationToken.None);
        Assert.Equal(2, record!.RowCount);
        Assert.Null(record.Result);
    }

    [Fact]
    public async Task With_the_postgres_store_calls_are_recorded_there_and_the_cli_verifies_them()
    {
        var audit = await pg.CreateDatabaseAsync("gwaudit");
        var gateway = TestGateway.Create(pg, gateway: $"store:\n  postgres: \"{audit}\"");
        await using (var server = await HttpGateway.StartAsync(gateway))
        {
            Assert.IsType<PostgresStateStore>(server.Gateway.Audit);
            await using var client = await GatewayClients.HttpAsync(server.Endpoint, gateway.Mint("analyst"));
            var allowed = await client.QueryAsync("select count(*) from orders");
            var denied = await client.QueryAsync("delete from orders");
            Assert.Equal("grant.read_only", denied.Rule());

            await using var log = await PostgresStateStore.OpenAsync(audit, () => null, CancellationToken.None);
            Assert.Equal(Verdict.Allowed, (await log.GetAsync(allowed.AuditId(), CancellationToken.None))!.Decision);
            Assert.Equal(Verdict.Denied, (await log.GetAsync(denied.AuditId(), CancellationToken.None))!.Decision);
            var local = await SqliteStateStore.OpenAsync(gateway.Policy.Gateway.StatePath, CancellationToken.None);
            Assert.Empty(await local.ListAsync(new AuditQuery(), CancellationToken.None));
        }

        var verify = await StdioTests.RunGatehouse(["audit", "verify", "--config", gateway.PolicyPath]);
        Assert.Equal(0, verify.ExitCode);
        Assert.Contains("Intact:", verify.Stdout);
    }

    [Fact]
    public async Task An_admin_command_pointed_at_a_database_the_gateway_never_used_fails_instead_of_making_its_state_there()
    {
        var empty = await pg.CreateDatabaseAsync("gwnone");
        var gateway = TestGateway.Create(pg, gateway: $"store:\n  postgres: \"{empty}\"");

        var verify = await StdioTests.RunGatehouse(["audit", "verify", "--config", gateway.PolicyPath]);

        Assert.Equal(ExitCodes.Error, verify.ExitCode);
        Assert.Contains("no gateway state in database", verify.Stderr);
        Assert.DoesNotContain("Intact", verify.Stdout);
        await using var connection = new Npgsql.NpgsqlConnection(empty);
        await connection.OpenAsync();
        await using var schema = new Npgsql.NpgsqlCommand($"SELECT to_regnamespace('{PostgresStateStore.SchemaName}') IS NULL", connection);
        Assert.True((bool)(await schema.ExecuteScalarAsync())!);
    }
}
