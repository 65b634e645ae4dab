using System.Security.Cryptography;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;
using Gatehouse.Tests.Infrastructure;
using Microsoft.IdentityModel.Tokens;
using ModelContextProtocol.Client;
using Npgsql;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// Strict masking against the shop: <c>gatehouse setup</c> creates the profiles, and PostgreSQL itself hands each agent
/// masked values. The gateway logs in as a fresh role that owns nothing, exactly as in production.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class StrictMaskingTests(PostgresFixture pg) : IAsyncLifetime
{
    private const string Masking = ExfiltrationCorpus.Tags + "\nstrategies:\n  ssn: token";

    private const string Agents = ExfiltrationCorpus.Readers + """

          clerk:
            grants:
              - connection: shop
                access: read
                schemas: [public]
              - connection: shop
                access: write
                tables: [public.orders, public.customers]
          visitor:
            grants:
              - connection: shop
                access: read
                tables: [public.orders]
          guest:
            grants:
              - connection: shop
                access: read
                schemas: [public]
        """;

    // Setup runs once per database: xunit makes a class instance per test, and each setup spawns the CLI.
    private static readonly SemaphoreSlim SetupOnce = new(1, 1);
    private static (PostgresFixture Pg, string Login, string Password, TestGateway Gateway)? _shared;

    private string _login = "";
    private string _password = "";
    private TestGateway _gateway = null!;
    private HttpGateway _server = null!;
    private McpClient _analyst = null!;
    private IReadOnlyList<string> _secrets = [];

    private string GatewayConnectionString => $"Host={pg.Host};Port={pg.Port};Database={pg.Database};Username={_login};Pooling=true";

    private string LoginConnectionString => $"Host={pg.Host};Port={pg.Port};Database={pg.Database};Username={_login};Password={_password};Pooling=false";

    public async Task InitializeAsync()
    {
        await SetupOnce.WaitAsync();
        try
        {
            if (_shared?.Pg != pg)
            {
                _login = "gatehouse_strict_" + Guid.NewGuid().ToString("N")[..8];
                _password = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(18));
                _gateway = TestGateway.Create(GatewayConnectionString, _password, Agents, connectionSettings: Masking);
                var setup = await SetupAsync();
                Assert.True(setup.ExitCode == 0, setup.Stderr + setup.Stdout);
                _shared = (pg, _login, _password, _gateway);
            }

            (_, _login, _password, _gateway) = _shared.Value;
        }
        finally
        {
            SetupOnce.Release();
        }

        _server = await HttpGateway.StartAsync(_gateway);
        _analyst = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("analyst"));
        _secrets = await ExfiltrationCorpus.SecretsAsync(pg);
    }

    public async Task DisposeAsync()
    {
        await _analyst.DisposeAsync();
        await _server.DisposeAsync();
    }

    private Task<(int ExitCode, string Stdout, string Stderr)> SetupAsync(params string[] extra) =>
        StdioTests.RunGatehouse(["setup", "--config", _gateway.PolicyPath, "--connection", "shop", "--admin-connection", pg.AdminConnectionString, .. extra]);

    [Theory]
    [MemberData(nameof(ExfiltrationCorpus.Attempts), MemberType = typeof(ExfiltrationCorpus))]
    public async Task An_agent_without_unmask_rights_gets_no_tagged_value_out(string sql)
    {
        var result = await _analyst.QueryAsync(sql, ExfiltrationCorpus.Parameters(sql));
        ExfiltrationCorpus.AssertNoSecret(result, _secrets);
    }

    [Fact]
    public async Task Strict_mode_answers_most_attempts_with_masked_values_instead_of_refusing()
    {
        var answered = new List<string>();
        foreach (var sql in ExfiltrationCorpus.All)
        {
            var result = await _analyst.QueryAsync(sql, ExfiltrationCorpus.Parameters(sql));
            if (result.IsError != true)
            {
                answered.Add(sql);
            }
        }

        // Overlay refuses all of these; strict lets PostgreSQL answer them from the masked views.
        Assert.True(answered.Count >= ExfiltrationCorpus.All.Count / 2, $"only {answered.Count} answered: {string.Join(" | ", answered)}");
        Assert.Contains("select row_to_json(c) from customers c", answered);
        Assert.Contains("select ssn, count(*) from customers group by ssn", answered);
    }

    [Fact]
    public async Task PostgreSQL_returns_each_class_masked_by_its_strategy_and_says_which_columns()
    {
        var result = await _analyst.QueryAsync("select id, full_name, email, phone, ssn, card_number as card from customers where id = 1");
        Assert.NotEqual(true, result.IsError);
        var row = result.Structured().GetProperty("rows")[0];
        Assert.Equal("Amelia Hartmann", row[1].GetString());
        Assert.Equal("***@example.com", row[2].GetString());
        Assert.Equal("***0134", row[3].GetString());
        Assert.Matches("^tok_[0-9a-f]{16}$", row[4].GetString());
        Assert.Equal("***1111", row[5].GetString());
        var masked = result.Structured().GetProperty("masked_columns");
        Assert.Equal("ssn", masked.GetProperty("ssn")[0].GetString());
        Assert.Equal("card", masked.GetProperty("card")[0].GetString());
        Assert.False(masked.TryGetProperty("full_name", out _));
        Assert.Equal(1, result.Structured().GetProperty("masked").GetProperty("ssn").GetInt32());

        // The audit record says what the agent received.
        var record = await _server.State.GetAsync(result.AuditId(), CancellationToken.None);
        Assert.Contains("ssn:1", record!.Masking);
        Assert.Contains("email:1", record.Masking);
    }

    [Fact]
    public async Task Partial_email_masking_of_a_value_holding_several_addresses_shows_only_the_first_ones_domain()
    {
        // split_part(email, '@', 2) kept everything up to a second '@': the next address's local part.
        var original = (string)(await pg.AdminScalarAsync("select email from customers where id = 2"))!;
        await pg.AdminScalarAsync("update customers set email = 'ann.lee@x.example, bob.smith@y.example' where id = 2");
        try
        {
            var result = await _analyst.QueryAsync("select email, array[email, 'carol@z.example'] as list from customers where id = 2");
            Assert.NotEqual(true, result.IsError);
            var row = result.Structured().GetProperty("rows")[0];
            Assert.Equal("***@x.example", row[0].GetString());
            Assert.DoesNotContain("bob", result.Text());
        }
        finally
        {
            await pg.AdminScalarAsync($"update customers set email = '{original.Replace("'", "''", StringComparison.Ordinal)}' where id = 2");
        }
    }

    [Fact]
    public async Task A_pooled_connection_is_back_to_the_login_role_after_a_profiled_call()
    {
        var single = _gateway.Policy.Connections["shop"] with { ConnectionString = GatewayConnectionString + ";Maximum Pool Size=1" };
        await using var targets = new PostgresTargets(new Dictionary<string, ConnectionConfig> { ["shop"] = single });
        var executor = new PostgresExecutor(targets);
        var caller = new AgentIdentity("analyst", [], "t", "analyst", null, DateTimeOffset.MaxValue);
        string Profile(string agent) => DatabaseProfiles.For(single, _gateway.Policy.Agents[agent].Grants, new HashSet<string>()).Name;
        ExecutionRequest Request(string sql, string agent, bool readOnly) =>
            new("shop", sql, [], readOnly, false, 10, 1 << 20, TimeSpan.FromSeconds(10), caller, "aud_test") { Role = SessionRole.Profile(Profile(agent)) };

        var inside = await executor.ExecuteAsync(Request("select current_user::text, current_setting('search_path')", "analyst", readOnly: true), null, CancellationToken.None);
        Assert.Equal(Profile("analyst"), inside.Rows[0][0]);
        Assert.Equal(Profile("analyst"), inside.Rows[0][1]);
        var written = await executor.ExecuteAsync(Request("update orders set note = note where id = 1", "clerk", readOnly: false), null, CancellationToken.None);
        Assert.Equal(1, written.AffectedRows);

        await using var connection = await targets.OpenAsync("shop", CancellationToken.None);
        await using var command = new NpgsqlCommand("select current_user::text", connection.Connection);
        Assert.Equal(_login, await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Setup_can_revoke_PUBLIC_execute_on_security_definer_functions()
    {
        await pg.AdminScalarAsync("create function public.strict_definer() returns int language sql security definer as 'select 1'");
        try
        {
            var canExecute = $"select has_function_privilege('{_login}', 'public.strict_definer()', 'EXECUTE')";
            Assert.Equal(true, await pg.AdminScalarAsync(canExecute));
            Assert.Contains("public.strict_definer()", (await SetupAsync("--dry-run")).Stdout);
            var revoked = await SetupAsync("--revoke-public-execute");
            Assert.Equal(ExitCodes.Ok, revoked.ExitCode);
            Assert.Equal(false, await pg.AdminScalarAsync(canExecute));
        }
        finally
        {
            await pg.AdminScalarAsync("drop function public.strict_definer()");
        }
    }

    [Fact]
    public async Task Tokens_are_deterministic_so_agents_can_count_and_join_without_seeing_values()
    {
        var distinct = await _analyst.QueryAsync("select count(distinct ssn) as n, count(ssn) as total from customers");
        var expected = await pg.AdminScalarAsync("select count(distinct ssn) from customers");
        Assert.Equal(Convert.ToInt64(expected), distinct.Structured().GetProperty("rows")[0][0].GetInt64());

        var self = await _analyst.QueryAsync("select count(*) from customers a join customers b on a.ssn = b.ssn where a.id = b.id");
        Assert.Equal(distinct.Structured().GetProperty("rows")[0][1].GetInt64(), self.Structured().GetProperty("rows")[0][0].GetInt64());
    }

    [Fact]
    public async Task Unmask_rights_map_to_their_own_profile()
    {
        await using var support = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("support"));
        var contact = await support.QueryAsync("select email, phone, ssn from customers where id = 1");
        var row = contact.Structured().GetProperty("rows")[0];
        Assert.Equal("amelia.hartmann@example.com", row[0].GetString());
        Assert.Equal("+1 415 555 0134", row[1].GetString());
        Assert.StartsWith("tok_", row[2].GetString());

        await using var auditor = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("auditor"));
        var all = await auditor.QueryAsync("select ssn, card_number from customers where id = 1");
        Assert.Equal("536-22-4821", all.Structured().GetProperty("rows")[0][0].GetString());
        Assert.Equal("4111111111111111", all.Structured().GetProperty("rows")[0][1].GetString());
    }

    [Fact]
    public async Task Writes_work_through_the_profile_and_a_masked_column_cannot_be_read_back()
    {
        await using var clerk = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("clerk"));
        var update = await clerk.QueryAsync("update orders set note = note where id = 1");
        Assert.Equal(1, update.Structured().GetProperty("affected_rows").GetInt32());

        var through = await clerk.QueryAsync("update customers set full_name = full_name where id = 1 returning ssn");
        Assert.StartsWith("tok_", through.Structured().GetProperty("rows")[0][0].GetString());

        var returning = await clerk.QueryAsync("update public.customers set full_name = full_name where id = 1 returning ssn");
        Assert.Equal("database.permission_denied", returning.Rule());
        var probing = await clerk.QueryAsync("update public.customers set full_name = full_name where ssn = '000-00-0000'");
        Assert.Equal("database.permission_denied", probing.Rule());
        Assert.Contains("without their schema", probing.Text());
        ExfiltrationCorpus.AssertNoSecret(returning, _secrets);
    }

    [Fact]
    public async Task The_login_role_reads_nothing_itself_even_after_RESET_ROLE()
    {
        await using var connection = new NpgsqlConnection(LoginConnectionString);
        await connection.OpenAsync();
        var profile = DatabaseProfiles.For(_gateway.Policy.Connections["shop"], _gateway.Policy.Agents["analyst"].Grants, new HashSet<string>()).Name;
        foreach (var sql in new[]
        {
            "select ssn from public.customers",
            "reset role; select ssn from public.customers",
            $"select ssn from {profile}.customers",
            "select key from gatehouse.mask_key",
            "select gatehouse.hmac('536-22-4821', 'guess', 'sha256')",
            $"set role {profile}; select gatehouse.hmac('536-22-4821', 'guess', 'sha256')",
            $"set role {profile}; select key from gatehouse.mask_key",
            $"set role {profile}; select ssn from public.customers",
        })
        {
            var steps = sql.Split("; ");
            foreach (var step in steps[..^1])
            {
                await using var first = new NpgsqlCommand(step, connection);
                await first.ExecuteNonQueryAsync();
            }

            await using var command = new NpgsqlCommand(steps[^1], connection);
            var error = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteScalarAsync());
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
            await using var reset = new NpgsqlCommand("reset role", connection);
            await reset.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task Setup_is_idempotent_and_check_finds_a_new_table_and_column_hidden_until_setup_runs()
    {
        Assert.Contains("Already in sync", (await SetupAsync()).Stdout);
        Assert.Equal(ExitCodes.Ok, (await SetupAsync("--check")).ExitCode);

        await pg.AdminScalarAsync("create table strict_probe (id int primary key, label text)");
        try
        {
            var check = await SetupAsync("--check");
            Assert.Equal(ExitCodes.Drift, check.ExitCode);
            Assert.Contains("public.strict_probe is not in profile", check.Stdout);
            Assert.Equal("database.rejected", (await _analyst.QueryAsync("select * from strict_probe")).Rule());

            Assert.Equal(ExitCodes.Ok, (await SetupAsync()).ExitCode);
            await pg.AdminScalarAsync("insert into strict_probe values (1, 'one')");
            await WaitForAsync(async () => (await _analyst.QueryAsync("select label from strict_probe")).IsError != true);

            await pg.AdminScalarAsync("alter table strict_probe add column secret_note text");
            var drift = await SetupAsync("--check");
            Assert.Equal(ExitCodes.Drift, drift.ExitCode);
            Assert.Contains("view of public.strict_probe differs", drift.Stdout);
            var hidden = await _analyst.QueryAsync("select secret_note from strict_probe");
            Assert.Equal("database.rejected", hidden.Rule());
            Assert.Contains("secret_note", hidden.Text());
        }
        finally
        {
            await pg.AdminScalarAsync("drop table strict_probe cascade");
        }
    }

    [Fact]
    public async Task Setup_lets_the_login_role_keep_parse_trees_out_of_the_server_log_and_check_finds_it_taken_away()
    {
        // Without SET on log_min_messages the statement probe cannot quiet the server log, so every statement is refused.
        await pg.AdminScalarAsync($"REVOKE SET ON PARAMETER log_min_messages FROM {_login}");
        try
        {
            var check = await SetupAsync("--check");
            Assert.Equal(ExitCodes.Drift, check.ExitCode);
            Assert.Contains($"login role {_login} may not SET log_min_messages", check.Stdout);
            Assert.Contains("setup grants it", check.Stdout);
            var refused = await _analyst.QueryAsync("select count(*) from orders where status = 'paid' and id > 17");
            Assert.Contains("may not set log_min_messages", refused.Text());
        }
        finally
        {
            Assert.Equal(ExitCodes.Ok, (await SetupAsync()).ExitCode);
        }

        Assert.Equal(true, await pg.AdminScalarAsync($"SELECT has_parameter_privilege('{_login}', 'log_min_messages', 'SET')"));
        Assert.NotEqual(true, (await _analyst.QueryAsync("select count(*) from orders where status = 'paid' and id > 18")).IsError);
    }

    [Fact]
    public async Task A_caller_whose_rights_have_no_profile_is_refused_until_setup_runs()
    {
        var extended = TestGateway.Create(
            GatewayConnectionString,
            _password,
            Agents + "\n  newcomer:\n    grants:\n      - connection: shop\n        access: read\n        tables: [public.customers]\n",
            connectionSettings: Masking);
        await using var server = await HttpGateway.StartAsync(extended);
        await using var newcomer = await GatewayClients.HttpAsync(server.Endpoint, extended.Mint("newcomer"));
        var result = await newcomer.QueryAsync("select ssn from customers");
        Assert.Equal("masking.profile_missing", result.Rule());
        Assert.Contains("gatehouse setup", result.Text());
        ExfiltrationCorpus.AssertNoSecret(result, _secrets);
    }

    [Fact]
    public async Task A_time_boxed_grant_gets_its_own_masked_profile_when_setup_runs_after_the_approval()
    {
        await using var visitor = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("visitor"));
        var requested = await visitor.RequestAccessAsync(["public.customers"], "read", "match orders to countries");
        var id = requested.Structured().GetProperty("request_id").GetString()!;
        var approved = await StdioTests.RunGatehouse(["approvals", "approve", id, "--config", _gateway.PolicyPath, "--as", "alice"]);
        Assert.Contains("run gatehouse setup", approved.Stdout);

        Assert.Equal("masking.profile_missing", (await visitor.QueryAsync("select ssn from customers where id = 1")).Rule());
        Assert.Contains($"agent visitor with request {id}", (await SetupAsync("--check")).Stdout);
        Assert.Equal(ExitCodes.Ok, (await SetupAsync()).ExitCode);
        var masked = await visitor.QueryAsync("select ssn, country from customers where id = 1");
        Assert.StartsWith("tok_", masked.Structured().GetProperty("rows")[0][0].GetString());

        // Revoked: the next setup drops the profile, and the agent is back to its policy rights.
        Assert.Equal(0, (await StdioTests.RunGatehouse(["grants", "revoke", id, "--config", _gateway.PolicyPath, "--as", "alice"])).ExitCode);
        Assert.Contains("left from an earlier policy", (await SetupAsync()).Stdout);
        var gone = await visitor.QueryAsync("select country from customers");
        Assert.Equal("database.rejected", gone.Rule());
        Assert.Contains("does not exist", gone.Text());
        Assert.NotEqual(true, (await visitor.QueryAsync("select count(*) from orders")).IsError);
    }

    [Fact]
    public async Task A_time_boxed_unmask_right_shows_exactly_its_class_once_setup_has_made_its_profile()
    {
        await using var guest = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("guest"));
        var id = (await guest.RequestAccessAsync([], "unmask:email", "send the renewal letters")).Structured().GetProperty("request_id").GetString()!;
        Assert.Equal(0, (await StdioTests.RunGatehouse(["approvals", "approve", id, "--config", _gateway.PolicyPath, "--as", "alice"])).ExitCode);
        Assert.Equal("masking.profile_missing", (await guest.QueryAsync("select email from customers where id = 1")).Rule());

        Assert.Equal(ExitCodes.Ok, (await SetupAsync()).ExitCode);
        var row = (await guest.QueryAsync("select email, ssn from customers where id = 1")).Structured().GetProperty("rows")[0];
        Assert.Equal("amelia.hartmann@example.com", row[0].GetString());
        Assert.StartsWith("tok_", row[1].GetString());

        Assert.Equal(0, (await StdioTests.RunGatehouse(["grants", "revoke", id, "--config", _gateway.PolicyPath, "--as", "alice"])).ExitCode);
        Assert.Equal(ExitCodes.Ok, (await SetupAsync()).ExitCode);
        Assert.Equal("***@example.com", (await guest.QueryAsync("select email from customers where id = 1")).Structured().GetProperty("rows")[0][0].GetString());
    }

    [Fact]
    public async Task Setup_reads_time_boxed_grants_from_a_state_store_in_postgres_too()
    {
        var state = await pg.CreateDatabaseAsync("strict_state");
        var withStore = TestGateway.Create(GatewayConnectionString, _password, Agents, gateway: $"store:\n  postgres: \"{state}\"", connectionSettings: Masking);
        await using var server = await HttpGateway.StartAsync(withStore);
        await using var guest = await GatewayClients.HttpAsync(server.Endpoint, withStore.Mint("guest"));
        var id = (await guest.RequestAccessAsync([], "unmask:email", "send the renewal letters")).Structured().GetProperty("request_id").GetString()!;
        Assert.Equal(0, (await StdioTests.RunGatehouse(["approvals", "approve", id, "--config", withStore.PolicyPath, "--as", "alice"])).ExitCode);
        try
        {
            var setup = await StdioTests.RunGatehouse(["setup", "--config", withStore.PolicyPath, "--connection", "shop", "--admin-connection", pg.AdminConnectionString]);
            Assert.Equal(ExitCodes.Ok, setup.ExitCode);
            await WaitForAsync(async () => (await guest.QueryAsync("select email from customers where id = 1")).IsError != true);
            Assert.Equal("amelia.hartmann@example.com", (await guest.QueryAsync("select email from customers where id = 1")).Structured().GetProperty("rows")[0][0].GetString());
        }
        finally
        {
            Assert.Equal(0, (await StdioTests.RunGatehouse(["grants", "revoke", id, "--config", withStore.PolicyPath, "--as", "alice"])).ExitCode);
            Assert.Equal(ExitCodes.Ok, (await SetupAsync()).ExitCode);
        }
    }

    [Fact]
    public async Task Setup_refuses_tagged_columns_PUBLIC_may_read_and_leaves_out_views_of_views_over_them()
    {
        await pg.AdminScalarAsync("grant select (ssn) on customers to public");
        try
        {
            var check = await SetupAsync("--check");
            Assert.Equal(ExitCodes.Drift, check.ExitCode);
            Assert.Contains("PUBLIC may read public.customers.ssn", check.Stderr);
        }
        finally
        {
            await pg.AdminScalarAsync("revoke select (ssn) on customers from public");
        }

        // A view PUBLIC may read hands over what it reads with its owner's rights, wherever it is kept (the plan shows only
        // the table under it); a child table, kept in another schema, is reached through a grant on its parent and carries
        // its parent's tags. A security_invoker view reads with its reader's rights, and a schema PUBLIC may not use is shut.
        foreach (var statement in (string[])[
            "create view strict_public_contacts as select id, ssn from customers", "grant select on strict_public_contacts to public",
            "create view strict_invoker_contacts with (security_invoker = true) as select id, ssn from customers", "grant select on strict_invoker_contacts to public",
            "create schema strict_elsewhere", "grant usage on schema strict_elsewhere to public",
            "create table strict_elsewhere.more_customers () inherits (public.customers)", "grant select on strict_elsewhere.more_customers to public",
            "create view strict_elsewhere.contacts as select id, ssn from public.customers", "grant select on strict_elsewhere.contacts to public",
            "create schema strict_shut", "create view strict_shut.contacts as select id, ssn from public.customers", "grant select on strict_shut.contacts to public"])
        {
            await pg.AdminScalarAsync(statement);
        }

        try
        {
            var check = await SetupAsync("--check");
            Assert.Equal(ExitCodes.Drift, check.ExitCode);
            Assert.Contains("PUBLIC may read public.strict_public_contacts, which reads public.customers.ssn", check.Stderr);
            Assert.Contains("PUBLIC may read strict_elsewhere.more_customers.ssn", check.Stderr);
            Assert.Contains("PUBLIC may read strict_elsewhere.contacts, which reads public.customers.ssn", check.Stderr);
            Assert.DoesNotContain("strict_invoker_contacts", check.Stderr);
            Assert.DoesNotContain("strict_shut", check.Stderr);
        }
        finally
        {
            await pg.AdminScalarAsync("drop view strict_public_contacts, strict_invoker_contacts");
            await pg.AdminScalarAsync("drop schema strict_elsewhere, strict_shut cascade");
        }

        await pg.AdminScalarAsync("create view strict_contacts as select id, email from customers");
        await pg.AdminScalarAsync("create view strict_contacts_again as select id, email from strict_contacts");
        try
        {
            var plan = await SetupAsync("--dry-run");
            Assert.Contains("public.strict_contacts_again is left out", plan.Stdout);
            Assert.Contains("public.customers.email", plan.Stdout);
        }
        finally
        {
            await pg.AdminScalarAsync("drop view strict_contacts_again, strict_contacts");
        }

        await using var guest = await GatewayClients.HttpAsync(_server.Endpoint, _gateway.Mint("guest"));
        var reserved = await guest.CallToolAsync("request_access", new Dictionary<string, object?>
        {
            ["connection"] = "shop",
            ["schemas"] = new[] { "gatehouse" },
            ["access"] = "read",
            ["reason"] = "read the key",
            ["duration"] = "10m",
        });
        Assert.Equal("request.reserved_schema", reserved.Rule());
    }

    [Fact]
    public async Task Setup_refuses_a_login_role_that_owns_tables()
    {
        var owner = TestGateway.Create(pg.GatewayConnectionString.Replace(pg.GatewayRole, "postgres", StringComparison.Ordinal), "unused", Agents, connectionSettings: Masking);
        var (exitCode, _, stderr) = await StdioTests.RunGatehouse(["setup", "--config", owner.PolicyPath, "--connection", "shop", "--admin-connection", pg.AdminConnectionString]);
        Assert.Equal(ExitCodes.Refused, exitCode);
        Assert.Contains("is a superuser", stderr);
        Assert.Contains("changed nothing", stderr);
    }

    [Fact]
    public async Task A_membership_granted_while_the_login_role_inherited_blocks_setup_where_NOINHERIT_would_not_end_it()
    {
        // Before PostgreSQL 16, ALTER ROLE ... NOINHERIT ends every inherited privilege; from 16 a membership granted while
        // the role inherited keeps inheriting, so setup's NOINHERIT would leave the gateway's role reading what it may.
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var login = "gatehouse_inh_" + suffix;
        var reader = "shop_reader_" + suffix;
        var password = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(18));
        await pg.AdminScalarAsync($"create role {reader} nologin");
        await pg.AdminScalarAsync($"grant select on public.customers to {reader}");
        await pg.AdminScalarAsync($"create role {login} login inherit password '{password}'");
        await pg.AdminScalarAsync($"grant {reader} to {login}");
        var version = Convert.ToInt32(await pg.AdminScalarAsync("select current_setting('server_version_num')")) / 10000;
        var gateway = TestGateway.Create(
            $"Host={pg.Host};Port={pg.Port};Database={pg.Database};Username={login};Pooling=false", password, Agents, connectionSettings: Masking);
        var run = () => StdioTests.RunGatehouse(["setup", "--config", gateway.PolicyPath, "--connection", "shop", "--admin-connection", pg.AdminConnectionString]);
        try
        {
            var first = await run();
            if (version >= 16)
            {
                Assert.Equal(ExitCodes.Refused, first.ExitCode);
                Assert.Contains($"login role {login} inherits the privileges of {reader}", first.Stderr);
                Assert.Contains("changed nothing", first.Stderr);
                Assert.Equal(true, await pg.AdminScalarAsync($"select rolinherit from pg_roles where rolname = '{login}'"));

                // The fix the message names: keep the membership, without its privileges.
                await pg.AdminScalarAsync($"grant {reader} to {login} with inherit false");
                first = await run();
            }

            Assert.True(first.ExitCode == ExitCodes.Ok, first.Stderr + first.Stdout);
            Assert.Contains($"login role {login} is also a member of {reader}; it inherits nothing from them", first.Stdout);
            await using var connection = new NpgsqlConnection($"Host={pg.Host};Port={pg.Port};Database={pg.Database};Username={login};Password={password};Pooling=false");
            await connection.OpenAsync();
            await using var read = new NpgsqlCommand("select ssn from public.customers limit 1", connection);
            var refused = await Assert.ThrowsAsync<PostgresException>(() => read.ExecuteScalarAsync());
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
        }
        finally
        {
            await DropLoginAndItsProfilesAsync(login);
            await pg.AdminScalarAsync($"revoke select on public.customers from {reader}");
            await pg.AdminScalarAsync($"drop role {reader}");
        }
    }

    [Fact]
    public async Task Setup_creates_a_missing_login_role_from_a_SCRAM_verifier_and_never_sends_the_password()
    {
        // A password outside ASCII, with a decomposed 'é' (e + U+0301): the verifier must hash what Npgsql proves when it signs in.
        var login = "gatehouse_new_" + Guid.NewGuid().ToString("N")[..8];
        var password = "Ünïcode-e\u0301-" + Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(18));
        var gateway = TestGateway.Create(
            $"Host={pg.Host};Port={pg.Port};Database={pg.Database};Username={login};Pooling=false", password, Agents, connectionSettings: Masking);

        // With md5 as the admin session's password_encryption, a password sent in clear would be stored as an md5 hash.
        var admin = pg.AdminConnectionString + ";Options=-c password_encryption=md5";
        try
        {
            var plan = await StdioTests.RunGatehouse(["setup", "--config", gateway.PolicyPath, "--connection", "shop", "--admin-connection", admin, "--dry-run"]);
            Assert.Contains($"CREATE ROLE \"{login}\" LOGIN NOINHERIT", plan.Stdout);
            var setup = await StdioTests.RunGatehouse(["setup", "--config", gateway.PolicyPath, "--connection", "shop", "--admin-connection", admin]);
            Assert.True(setup.ExitCode == ExitCodes.Ok, setup.Stderr + setup.Stdout);
            foreach (var output in new[] { plan.Stdout, plan.Stderr, setup.Stdout, setup.Stderr })
            {
                Assert.DoesNotContain(password, output, StringComparison.Ordinal);
            }

            var stored = (string)(await pg.AdminScalarAsync($"select rolpassword from pg_authid where rolname = '{login}'"))!;
            Assert.Matches(@"^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$", stored);

            await using var connection = new NpgsqlConnection($"Host={pg.Host};Port={pg.Port};Database={pg.Database};Username={login};Password={password};Pooling=false");
            await connection.OpenAsync();
            await using var whoami = new NpgsqlCommand("select current_user", connection);
            Assert.Equal(login, await whoami.ExecuteScalarAsync());
            await connection.CloseAsync();

            await using var wrong = new NpgsqlConnection($"Host={pg.Host};Port={pg.Port};Database={pg.Database};Username={login};Password={password}x;Pooling=false");
            var refused = await Assert.ThrowsAsync<PostgresException>(() => wrong.OpenAsync());
            Assert.Equal(PostgresErrorCodes.InvalidPassword, refused.SqlState);
        }
        finally
        {
            await DropLoginAndItsProfilesAsync(login);
        }
    }

    private async Task DropLoginAndItsProfilesAsync(string login)
    {
        var profiles = await pg.AdminScalarAsync(
            $"select string_agg(format('drop schema %I cascade', nspname), '; ') from pg_namespace where obj_description(oid, 'pg_namespace') like '%{login}%'");
        if (profiles is string drops)
        {
            foreach (var drop in drops.Split("; "))
            {
                await pg.AdminScalarAsync(drop);
            }
        }

        // Setup made profile roles for this login role alone (its name is part of theirs), with grants on the shop's tables.
        var roles = await pg.AdminScalarAsync(
            $"select string_agg(g.rolname, ' ') from pg_auth_members m join pg_roles g on g.oid = m.roleid join pg_roles r on r.oid = m.member where r.rolname = '{login}' and g.rolname like 'gatehouse\\_p\\_%'");
        if (await pg.AdminScalarAsync($"select 1 from pg_roles where rolname = '{login}'") is null)
        {
            return;
        }

        await pg.AdminScalarAsync($"drop owned by {login}");
        await pg.AdminScalarAsync($"drop role {login}");
        foreach (var role in (roles as string ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            await pg.AdminScalarAsync($"drop owned by {role}");
            await pg.AdminScalarAsync($"drop role {role}");
        }
    }

    [Fact]
    public async Task Setup_refuses_an_untagged_generated_column_computed_from_a_tagged_one_and_calls_stop_until_it_is_tagged()
    {
        await pg.AdminScalarAsync("alter table public.customers add column ssn_last4 text generated always as (right(ssn, 4)) stored");
        try
        {
            var (exitCode, _, stderr) = await SetupAsync();
            Assert.Equal(ExitCodes.Refused, exitCode);
            Assert.Contains("generated column public.customers.ssn_last4 is computed from public.customers.ssn, tagged ssn, but has no tag of its own", stderr);
            Assert.Contains("tag it too, so its profiles mask it", stderr);
            Assert.Contains("changed nothing", stderr);

            await WaitForAsync(async () => (await _analyst.QueryAsync("select id from customers where id = 1")).Rule() == "masking.tags_out_of_sync");
            var refused = await _analyst.QueryAsync("select ssn_last4 from public.customers");
            Assert.Equal("masking.tags_out_of_sync", refused.Rule());
            Assert.Contains("public.customers.ssn_last4", refused.Text());
            ExfiltrationCorpus.AssertNoSecret(refused, _secrets);
        }
        finally
        {
            await pg.AdminScalarAsync("alter table public.customers drop column ssn_last4");
        }

        await WaitForAsync(async () => (await _analyst.QueryAsync("select id from customers where id = 1")).IsError != true);
    }

    [Fact]
    public async Task An_inheritance_child_of_a_tagged_table_is_masked_as_its_parent_is()
    {
        await pg.AdminScalarAsync("create table public.customers_archive (archived_on date) inherits (public.customers)");
        await pg.AdminScalarAsync("insert into public.customers_archive (id, full_name, email, ssn, country, archived_on) values (900, 'Archie Ved', 'archie@example.com', '219-09-9999', 'US', '2026-01-01')");
        try
        {
            Assert.Equal(ExitCodes.Ok, (await SetupAsync()).ExitCode);
            await WaitForAsync(async () => (await _analyst.QueryAsync("select id from customers_archive")).IsError != true);

            var row = (await _analyst.QueryAsync("select ssn, email, archived_on from customers_archive")).Structured().GetProperty("rows")[0];
            Assert.StartsWith("tok_", row[0].GetString());
            Assert.NotEqual("archie@example.com", row[1].GetString());
            Assert.Equal("2026-01-01", row[2].GetString());
        }
        finally
        {
            await pg.AdminScalarAsync("drop table public.customers_archive cascade");
            Assert.Equal(ExitCodes.Ok, (await SetupAsync()).ExitCode);
        }
    }

    [Fact]
    public async Task Setup_revokes_a_privilege_another_role_granted_the_login_role_not_only_the_owners()
    {
        // REVOKE without GRANTED BY removes only the owner's grants: setup said it revoked, and the login role still read
        // raw values after RESET ROLE.
        var bob = "strict_bob_" + Guid.NewGuid().ToString("N")[..8];
        await pg.AdminScalarAsync($"create role {bob}");
        await pg.AdminScalarAsync($"grant select on public.customers to {bob} with grant option");
        await pg.AdminAsAsync(bob, $"grant select on public.customers to {_login}");

        try
        {
            var check = await SetupAsync("--check");
            Assert.Equal(ExitCodes.Drift, check.ExitCode);
            Assert.Contains($"login role {_login} holds privileges on public.customers directly", check.Stdout);

            var setup = await SetupAsync();
            Assert.True(setup.ExitCode == ExitCodes.Ok, setup.Stdout + setup.Stderr);
            Assert.Equal(false, await pg.AdminScalarAsync($"select has_table_privilege('{_login}', 'public.customers', 'SELECT')"));
            Assert.Equal(ExitCodes.Ok, (await SetupAsync("--check")).ExitCode);
        }
        finally
        {
            await pg.AdminScalarAsync($"revoke all on public.customers from {bob} cascade");
            await pg.AdminScalarAsync($"drop role {bob}");
        }
    }

    [Fact]
    public async Task Nobody_but_each_profile_reads_its_views_or_the_token_key_whatever_default_privileges_or_grants_say()
    {
        // A common DBA setup: a read-only role handed every new table and schema the admin creates. A profile view reads
        // with its owner's rights, so that role would read every row the profile sees, tables it may not read included.
        var reader = "strict_ro_" + Guid.NewGuid().ToString("N")[..8];
        var passedOn = reader + "_2";
        var profile = (string)(await pg.AdminScalarAsync(
            $"select g.rolname::text from pg_auth_members a join pg_roles g on g.oid = a.roleid join pg_roles m on m.oid = a.member where m.rolname = '{_login}' limit 1"))!;
        await pg.AdminScalarAsync($"create role {reader}");
        await pg.AdminScalarAsync($"create role {passedOn}");
        await pg.AdminScalarAsync($"alter default privileges grant select on tables to {reader}");
        await pg.AdminScalarAsync($"alter default privileges grant usage on schemas to {reader}");
        await pg.AdminScalarAsync($"grant usage on schema gatehouse to {reader}");
        // Passed on with a grant option: a REVOKE without CASCADE fails on it.
        await pg.AdminScalarAsync($"grant select (key) on gatehouse.mask_key to {reader} with grant option");
        await pg.AdminAsAsync(reader, $"grant select (key) on gatehouse.mask_key to {passedOn}");
        // A member of a profile reads all it sees.
        await pg.AdminScalarAsync($"grant {profile} to {reader}");
        try
        {
            var check = await SetupAsync("--check");
            Assert.Equal(ExitCodes.Drift, check.ExitCode);
            Assert.Contains($"{reader} holds SELECT on gatehouse.mask_key, which setup grants nobody", check.Stdout);
            Assert.Contains($"{passedOn} holds SELECT on gatehouse.mask_key", check.Stdout);
            Assert.Contains($"{reader} holds USAGE on schema gatehouse", check.Stdout);
            Assert.Contains($"{reader} is a member of profile {profile}, which setup grants only login role {_login} (a member reads every row the profile sees, or with the admin option may grant itself that); setup revokes it", check.Stdout);

            var setup = await SetupAsync();
            Assert.True(setup.ExitCode == ExitCodes.Ok, setup.Stdout + setup.Stderr);
            Assert.Contains($"hand new schemas to {reader}, and new tables and views to {reader}; setup revokes them", setup.Stdout);

            const string GatewaySchemas = "(n.nspname like 'gatehouse\\_p\\_%' or n.nspname = 'gatehouse')";
            Assert.Equal(0L, await pg.AdminScalarAsync(
                $"select count(*) from pg_namespace n, (values ('{reader}'), ('{passedOn}')) r(name) where {GatewaySchemas} and has_schema_privilege(r.name, n.oid, 'USAGE')"));
            Assert.Equal(0L, await pg.AdminScalarAsync(
                $"select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace, (values ('{reader}'), ('{passedOn}')) r(name)"
                + $" where {GatewaySchemas} and c.relkind in ('r', 'v') and has_any_column_privilege(r.name, c.oid, 'SELECT')"));
            Assert.Equal(0L, await pg.AdminScalarAsync($"select count(*) from pg_auth_members a join pg_roles m on m.oid = a.member where m.rolname = '{reader}'"));
            // The profiles still read their views.
            var read = await _analyst.QueryAsync("select count(*) from customers");
            Assert.True(read.IsError != true, read.Text());
            Assert.Equal(ExitCodes.Ok, (await SetupAsync("--check")).ExitCode);

            // A member of the login role could SET ROLE to it and on to any profile: setup will not paper over that.
            await pg.AdminScalarAsync($"grant {_login} to {passedOn}");
            var blocked = await SetupAsync("--check");
            Assert.NotEqual(ExitCodes.Ok, blocked.ExitCode);
            Assert.Contains($"{passedOn} may SET ROLE to login role {_login}, and from it to every profile", blocked.Stdout + blocked.Stderr);
            await pg.AdminScalarAsync($"revoke {_login} from {passedOn}");
        }
        finally
        {
            await pg.AdminScalarAsync($"alter default privileges revoke all on tables from {reader}");
            await pg.AdminScalarAsync($"alter default privileges revoke all on schemas from {reader}");
            await pg.AdminScalarAsync($"drop owned by {reader}, {passedOn}");
            await pg.AdminScalarAsync($"drop role {reader}");
            await pg.AdminScalarAsync($"drop role {passedOn}");
        }
    }

    [Fact]
    public async Task A_column_of_a_not_null_domain_over_a_domain_masked_as_null_is_null_of_its_base_type()
    {
        // NULL cast to the domain itself fails on every row: "domain strict_token does not allow null values".
        await pg.AdminScalarAsync("create domain public.strict_token_inner as text not null");
        await pg.AdminScalarAsync("create domain public.strict_token as public.strict_token_inner");
        await pg.AdminScalarAsync("create table public.strict_keys (id int, token public.strict_token)");
        try
        {
            var tags = ExfiltrationCorpus.Tags + "\n  public.strict_keys.token: secret\nstrategies:\n  secret: \"null\"";
            var views = await DryRunViewsAsync(tags, "strict_keys");
            Assert.NotEmpty(views);
            Assert.Contains(views, v => v.Contains("NULL::text AS \"token\"", StringComparison.Ordinal));
            Assert.DoesNotContain(views, v => v.Contains("NULL::strict_token", StringComparison.Ordinal) || v.Contains("NULL::public.strict_token", StringComparison.Ordinal));
            // NULL of the base type reads where NULL of either domain fails.
            Assert.Equal(DBNull.Value, await pg.AdminScalarAsync("select NULL::text"));
            await Assert.ThrowsAsync<PostgresException>(() => pg.AdminScalarAsync("select NULL::public.strict_token"));
        }
        finally
        {
            await pg.AdminScalarAsync("drop table public.strict_keys");
            await pg.AdminScalarAsync("drop domain public.strict_token");
            await pg.AdminScalarAsync("drop domain public.strict_token_inner");
        }
    }

    [Fact]
    public async Task A_tag_on_an_inheritance_childs_column_masks_the_parents_view_too()
    {
        // The parent's view reads the child's rows (no ONLY), so the child's tag must mask the parent's column.
        await pg.AdminScalarAsync("create table public.strict_people (id int, ssn text)");
        await pg.AdminScalarAsync("create table public.strict_people_kids () inherits (public.strict_people)");
        try
        {
            var tags = ExfiltrationCorpus.Tags + "\n  public.strict_people_kids.ssn: ssn\nstrategies:\n  ssn: token";
            var parentViews = await DryRunViewsAsync(tags, "strict_people");
            Assert.NotEmpty(parentViews);
            Assert.Contains(parentViews, v => v.Contains("hmac(", StringComparison.Ordinal));
        }
        finally
        {
            await pg.AdminScalarAsync("drop table public.strict_people cascade");
        }
    }

    // The CREATE VIEW lines `setup --dry-run` prints for one table, with these tags (and strategies) in the policy.
    private async Task<List<string>> DryRunViewsAsync(string tags, string table)
    {
        var tagged = TestGateway.Create(GatewayConnectionString, _password, Agents, connectionSettings: tags);
        var plan = await StdioTests.RunGatehouse(["setup", "--config", tagged.PolicyPath, "--connection", "shop", "--admin-connection", pg.AdminConnectionString, "--dry-run"]);
        return plan.Stdout.Split('\n').Where(l => l.Contains("CREATE VIEW", StringComparison.Ordinal) && l.Contains($"\"{table}\" t", StringComparison.Ordinal)).ToList();
    }

    // The gateway re-plans once it sees the catalog change (polled every 250 ms).
    private static Task WaitForAsync(Func<Task<bool>> condition) => Eventually.HoldsAsync(condition, TimeSpan.FromSeconds(4));
}
