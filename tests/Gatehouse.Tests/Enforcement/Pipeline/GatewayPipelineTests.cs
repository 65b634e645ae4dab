using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gatehouse.Tests.Enforcement.Pipeline;

/// <summary>The pipeline's decisions and recording, with the database and stores replaced by doubles that count and fail on demand.</summary>
public sealed partial class GatewayPipelineTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-pipeline-" + Guid.NewGuid().ToString("N"));
    private readonly GatewayPolicy _policy;
    private readonly MemoryAuditStore _audit = new();
    private readonly RecordingDatabase _database = new();
    private readonly AgentSwitch _agents = new();
    private readonly NoApprovals _approvals = new();
    private readonly MemoryStatementApprovals _statements = new();
    private readonly GatewayLifetime _lifetime = new();
    private readonly GatewayPipeline _pipeline;

    public GatewayPipelineTests()
    {
        Directory.CreateDirectory(_directory);
        _policy = Version(AnalystReads, "gateway:\n  limits:\n    max_sql_length: 200");
        _pipeline = Pipeline(_policy);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A pipeline over this test's doubles, with the given policy.</summary>
    private GatewayPipeline Pipeline(GatewayPolicy policy) => Pipeline(new LivePolicy(policy));

    /// <summary>A pipeline following a policy that may be reloaded.</summary>
    private GatewayPipeline Pipeline(LivePolicy policy) => new(
        policy,
        new Identifier(new TokenValidator(policy.Current.Issuers, TimeProvider.System), _agents),
        _audit, _approvals, _statements, _database, _database, _database, _database, _database, TimeProvider.System, NullLogger<GatewayPipeline>.Instance, _lifetime);

    private string Token(string agent = "analyst")
    {
        var issuer = _policy.Issuers[0];
        return DevIssuer.Mint(issuer, DevIssuer.LoadOrCreateKey(issuer.Keys.DevKeyFile!), agent, [], TimeSpan.FromMinutes(5), DateTimeOffset.UtcNow);
    }

    private Task<CallOutcome> Query(string sql, string? token = null, string connection = "shop") =>
        _pipeline.QueryAsync(new CallContext("query", token ?? Token(), "test", "s1"), new QueryRequest(connection, sql, [], null), CancellationToken.None).AsTask();

    [Fact]
    public async Task An_allowed_query_is_recorded_before_it_runs_and_completed_after()
    {
        var outcome = await Query("select * from orders");
        Assert.True(outcome.Decision.IsAllowed);
        var begun = Assert.Single(_audit.Begun);
        Assert.Equal(Verdict.Started, begun.Decision);
        Assert.Equal("analyst", begun.Agent);
        var completed = _audit.Completed[outcome.AuditId!];
        Assert.Equal(Verdict.Allowed, completed.Decision);
        Assert.Equal(1, completed.RowCount);
        Assert.Equal("select: public.orders(read)", completed.Classification);
    }

    [Fact]
    public async Task When_the_audit_store_fails_nothing_reaches_the_database()
    {
        _audit.FailBegin = true;
        var outcome = await Query("select * from orders");
        Assert.Equal("audit.unavailable", outcome.Decision.Rule);
        Assert.Equal(0, _database.Explains);
        Assert.Equal(0, _database.Executions);
    }

    [Fact]
    public async Task When_the_agent_switches_cannot_be_read_the_call_is_refused_saying_so_and_recorded_and_nothing_runs()
    {
        _agents.Failure = new StoreDown();
        var outcome = await Query("select * from orders");
        AssertStateUnavailable(outcome, "read whether this agent has been disabled");
    }

    [Fact]
    public async Task When_the_time_boxed_grants_cannot_be_read_the_call_is_refused_saying_so_and_recorded_and_nothing_runs()
    {
        _approvals.GrantsFailure = new TimeoutException("the state store did not answer in time");
        var outcome = await Query("select * from orders");
        AssertStateUnavailable(outcome, "read this agent's time-boxed grants");
    }

    [Fact]
    public async Task A_fault_in_the_gateway_while_reading_its_state_is_not_reported_as_an_outage()
    {
        _agents.Failure = new InvalidOperationException("a bug");
        var outcome = await Query("select * from orders");
        Assert.Equal("gateway.error", outcome.Decision.Rule);
        Assert.Equal(0, _database.Executions);
    }

    // Refused saying what could not be done, recorded, and nothing run; the statement was planned only where it had got that far.
    private void AssertStateUnavailable(CallOutcome outcome, string what, bool planned = false)
    {
        Assert.Equal(Verdict.Failed, outcome.Decision.Verdict);
        Assert.Equal("state.unavailable", outcome.Decision.Rule);
        Assert.Contains($"state store did not answer, so the gateway could not {what}; nothing was run", outcome.Decision.Reason);
        Assert.Equal(planned ? 1 : 0, _database.Explains);
        Assert.Equal(0, _database.Executions);
        Assert.Equal("state.unavailable", _audit.Completed[outcome.AuditId!].Rule);
    }

    [Fact]
    public async Task When_the_final_record_cannot_be_written_the_result_is_withheld()
    {
        _audit.FailComplete = true;
        var outcome = await Query("select * from orders");
        Assert.Equal(Verdict.Failed, outcome.Decision.Verdict);
        Assert.Equal("audit.unavailable", outcome.Decision.Rule);
        Assert.Null(outcome.Payload);
    }

    [Theory]
    [InlineData("", "sql.empty")]
    [InlineData("   -- nothing\n", "sql.empty")]
    [InlineData("select 1; drop table orders", "sql.multiple_statements")]
    [InlineData("select 'open", "sql.unreadable")]
    [InlineData("delete from orders", "grant.read_only")]
    [InlineData("drop table orders", "grant.kind_not_allowed")]
    public async Task Refused_statements_are_recorded_and_never_reach_the_database(string sql, string rule)
    {
        var outcome = await Query(sql);
        Assert.Equal(rule, outcome.Decision.Rule);
        Assert.Equal(Verdict.Denied, _audit.Completed[outcome.AuditId!].Decision);
        Assert.Equal(0, _database.Explains + _database.Executions);
    }

    [Fact]
    public async Task A_statement_over_the_size_limit_is_refused_and_recorded_clipped()
    {
        var outcome = await Query("select '" + new string('x', 500) + "'");
        Assert.Equal("sql.too_large", outcome.Decision.Rule);
        Assert.True(_audit.Completed[outcome.AuditId!].Sql!.Length < 300);
    }

    [Fact]
    public async Task An_unknown_connection_is_refused_naming_the_known_ones()
    {
        var outcome = await Query("select 1", connection: "warehouse");
        Assert.Equal("request.unknown_connection", outcome.Decision.Rule);
        Assert.Contains("shop", outcome.Decision.Reason);
    }

    [Fact]
    public async Task A_bad_token_is_refused_and_recorded_without_an_agent()
    {
        var outcome = await Query("select 1", token: "garbage");
        Assert.Equal("identity.malformed_token", outcome.Decision.Rule);
        var record = _audit.Completed[outcome.AuditId!];
        Assert.Null(record.Agent);
        Assert.Equal(Verdict.Denied, record.Decision);
        Assert.DoesNotContain("garbage", record.Reason);
    }

    [Fact]
    public async Task A_disabled_agent_is_refused_on_its_next_call()
    {
        var token = Token();
        Assert.True((await Query("select 1", token)).Decision.IsAllowed);
        _agents.Disabled.Add("analyst");
        var outcome = await Query("select 1", token);
        Assert.Equal("identity.agent_disabled", outcome.Decision.Rule);

        // On record as the agent's attempt, so its activity and a leaked token's use can be traced.
        var record = _audit.Completed[outcome.AuditId!];
        Assert.Equal(Verdict.Denied, record.Decision);
        Assert.Equal("analyst", record.Agent);
        Assert.NotNull(record.TokenId);
    }

    [Fact]
    public async Task An_unreachable_database_is_a_failed_call_with_a_clear_reason()
    {
        _database.Failure = new DatabaseException(DatabaseFailure.Unavailable, "connection refused");
        var outcome = await Query("select * from orders");
        Assert.Equal("database.unavailable", outcome.Decision.Rule);
        Assert.Contains("shop", outcome.Decision.Reason);
        Assert.Equal(Verdict.Failed, _audit.Completed[outcome.AuditId!].Decision);
    }

    [Fact]
    public async Task A_repeated_statement_is_classified_once_while_the_catalog_version_stands()
    {
        _database.Version = "v1";
        await Query("select * from orders");
        await Query("SELECT *   FROM orders -- same statement, other layout");
        Assert.Equal(1, _database.Explains);
        Assert.Equal(2, _database.Executions);

        _database.Version = "v2";
        await Query("select * from orders");
        Assert.Equal(2, _database.Explains);
    }

    [Fact]
    public async Task Without_a_confirmed_catalog_version_every_statement_is_explained()
    {
        _database.Version = null;
        await Query("select * from orders");
        await Query("select * from orders");
        Assert.Equal(2, _database.Explains);
    }

    [Fact]
    public async Task In_observe_only_mode_a_policy_refusal_is_recorded_but_the_statement_runs()
    {
        var observing = Pipeline(_policy with { Connections = _policy.Connections.ToDictionary(c => c.Key, c => c.Value with { ObserveOnly = true }) });
        _database.Plan = new([new(new("public", "orders"), AccessLevel.Write, "delete")], [], 0, 1);
        var outcome = await observing.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "delete from orders where id = 1", [], null), CancellationToken.None);
        Assert.True(outcome.Decision.IsAllowed);
        Assert.Equal("observe.would_deny", outcome.Decision.Rule);
        Assert.Contains("grant.read_only", outcome.Decision.Reason);
        Assert.Equal(1, _database.Executions);
        Assert.Equal("observe.would_deny", _audit.Completed[outcome.AuditId!].Rule);

        var ddl = await observing.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "drop table orders", [], null), CancellationToken.None);
        Assert.Equal("grant.kind_not_allowed", ddl.Decision.Rule);
        Assert.Equal(1, _database.Executions);
    }

    [Fact]
    public async Task A_write_whose_record_cannot_be_stored_is_never_committed()
    {
        var writer = Pipeline(_policy with { Agents = new Dictionary<string, PrincipalPolicy> { ["analyst"] = new("analyst", [new Grant("shop", AccessLevel.Write, ["public"], [])]) } });
        _database.Plan = new([new(new("public", "orders"), AccessLevel.Write, "update")], [], 0, 1);
        _audit.FailComplete = true;
        var outcome = await writer.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "update orders set note = 'x' where id = 1", [], null), CancellationToken.None);
        Assert.Equal("audit.unavailable", outcome.Decision.Rule);
        Assert.Equal(1, _database.Executions);
        Assert.Equal(0, _database.Commits);

        _audit.FailComplete = false;
        var committed = await writer.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "update orders set note = 'x' where id = 1", [], null), CancellationToken.None);
        Assert.True(committed.Decision.IsAllowed);
        Assert.Equal(1, _database.Commits);
        Assert.Equal(1, _audit.Completed[committed.AuditId!].RowCount);
    }

    [Fact]
    public async Task A_committed_write_whose_final_record_cannot_be_written_is_reported_committed()
    {
        var writer = Pipeline(_policy with { Agents = new Dictionary<string, PrincipalPolicy> { ["analyst"] = new("analyst", [new Grant("shop", AccessLevel.Write, ["public"], [])]) } });
        _database.Plan = new([new(new("public", "orders"), AccessLevel.Write, "update")], [], 0, 1);
        _audit.CompletesBeforeFailing = 1;

        var outcome = await writer.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "update orders set note = 'x' where id = 1", [], null), CancellationToken.None);

        // The outcome was stored before the commit; only the last write of the record failed. Told it failed, an agent retries.
        Assert.Equal(1, _database.Commits);
        Assert.Equal("audit.unavailable", outcome.Decision.Rule);
        Assert.Contains("the write was committed (1 row(s) changed)", outcome.Decision.Reason, StringComparison.Ordinal);
        Assert.Contains("do not run it again", outcome.Decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tag_naming_a_column_the_database_lacks_stops_the_connection_until_fixed()
    {
        var ssn = new Gatehouse.Enforcement.Classification.ColumnUse(new("public", "customers"), "snn");
        var tagged = Pipeline(_policy with { Connections = _policy.Connections.ToDictionary(c => c.Key, c => c.Value with { Masking = MaskingMode.Overlay, Tags = new Dictionary<Gatehouse.Enforcement.Classification.ColumnUse, string> { [ssn] = "ssn" } }) });
        _database.Tables.Add(new TableDescription(new("public", "customers"), "table", null, [new ColumnDescription("ssn", "text", true, null)], [], []));

        var outcome = await tagged.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "select id from orders", [], null), CancellationToken.None);
        Assert.Equal("masking.tags_out_of_sync", outcome.Decision.Rule);
        Assert.Contains("public.customers.snn", outcome.Decision.Reason);
        Assert.Equal(0, _database.Explains + _database.Executions);

        // The fix is DDL, which changes the catalog's version.
        _database.Tables.Add(new TableDescription(new("public", "customers"), "table", null, [new ColumnDescription("snn", "text", true, null)], [], []));
        _database.Version = "v2";
        Assert.True((await tagged.QueryAsync(new CallContext("query", Token(), "test", "s1"), new QueryRequest("shop", "select id from orders", [], null), CancellationToken.None)).Decision.IsAllowed);
    }

    [Fact]
    public async Task A_function_missing_from_the_cached_catalog_is_looked_up_once_more_then_refused()
    {
        _database.Plan = _database.Plan with { Functions = [new("public", "mystery")] };
        var outcome = await Query("select public.mystery()");
        Assert.Equal("function.unknown", outcome.Decision.Rule);
        Assert.Equal(1, _database.CatalogRefreshes);
        Assert.Equal(0, _database.Executions);
    }

    [Fact]
    public async Task A_crash_inside_the_gateway_gives_the_agent_no_stack_trace()
    {
        _database.Failure = new InvalidOperationException("secret internal detail");
        var outcome = await Query("select * from orders");
        Assert.Equal("gateway.error", outcome.Decision.Rule);
        Assert.DoesNotContain("secret internal detail", outcome.Decision.Reason);
        Assert.Contains(outcome.AuditId!, outcome.Decision.Reason);
    }
}
