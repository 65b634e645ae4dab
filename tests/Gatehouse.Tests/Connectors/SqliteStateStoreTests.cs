using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Connectors;

public sealed class SqliteStateStoreTests
{
    private static Task<SqliteStateStore> Open() => SqliteStateStore.OpenAsync(Path.Combine(TestDirectory.Create("state"), "state.db"), CancellationToken.None);

    private static AuditRecord Record(string agent, Verdict decision, DateTimeOffset time) => new()
    {
        Id = AuditRecord.NewId(),
        Time = time,
        Tool = "query",
        Transport = "test",
        Agent = agent,
        Groups = ["g1"],
        Sql = "select 1",
        Decision = decision,
        Rule = "r",
        Reason = "because",
    };

    private static AccessRequest Request(string agent, DateTimeOffset created) =>
        new(AccessRequest.NewId(), agent, agent, "dev", "shop", [new RelationName("public", "payments")], AccessLevel.Read, "audit", TimeSpan.FromHours(1), AccessRequestStatus.Pending, created);

    [Fact]
    public async Task A_started_record_is_completed_in_place()
    {
        var store = await Open();
        var record = Record("analyst", Verdict.Started, DateTimeOffset.UtcNow);
        await store.BeginAsync(record, CancellationToken.None);
        await store.CompleteAsync(record with { Decision = Verdict.Allowed, RowCount = 3 }, CancellationToken.None);
        var stored = await store.GetAsync(record.Id, CancellationToken.None);
        Assert.Equal(Verdict.Allowed, stored!.Decision);
        Assert.Equal(3, stored.RowCount);
        Assert.Equal(["g1"], stored.Groups);
        Assert.Single(await store.ListAsync(new AuditQuery(), CancellationToken.None));
    }

    [Fact]
    public async Task Listing_filters_by_agent_time_and_decision_newest_first()
    {
        var store = await Open();
        var now = DateTimeOffset.UtcNow;
        await store.CompleteAsync(Record("analyst", Verdict.Allowed, now.AddHours(-2)), CancellationToken.None);
        await store.CompleteAsync(Record("analyst", Verdict.Denied, now.AddMinutes(-5)), CancellationToken.None);
        await store.CompleteAsync(Record("ops-bot", Verdict.Denied, now.AddMinutes(-1)), CancellationToken.None);

        Assert.Equal(2, (await store.ListAsync(new AuditQuery(Agent: "analyst"), CancellationToken.None)).Count);
        Assert.Equal(2, (await store.ListAsync(new AuditQuery(Since: now.AddHours(-1)), CancellationToken.None)).Count);
        var denied = await store.ListAsync(new AuditQuery(Decision: Verdict.Denied), CancellationToken.None);
        Assert.Equal(["ops-bot", "analyst"], denied.Select(r => r.Agent));
    }

    [Fact]
    public async Task An_approved_request_grants_access_until_it_expires()
    {
        var store = await Open();
        var now = DateTimeOffset.UtcNow;
        var request = Request("analyst", now);
        await store.CreateAsync(request, CancellationToken.None);
        Assert.Empty(await store.ActiveGrantsAsync("analyst", now, CancellationToken.None));

        Assert.True(await store.DecideAsync(request.Id, approve: true, "alice", "ok", now, CancellationToken.None));
        var grant = Assert.Single(await store.ActiveGrantsAsync("analyst", now.AddMinutes(59), CancellationToken.None));
        Assert.True(grant.Covers(new RelationName("public", "payments")));
        Assert.Empty(await store.ActiveGrantsAsync("analyst", now.AddMinutes(61), CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Expired, (await store.GetAsync(request.Id, now.AddMinutes(61), CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task A_request_is_decided_once()
    {
        var store = await Open();
        var now = DateTimeOffset.UtcNow;
        var request = Request("analyst", now);
        await store.CreateAsync(request, CancellationToken.None);
        Assert.True(await store.DecideAsync(request.Id, approve: false, "alice", "no", now, CancellationToken.None));
        Assert.False(await store.DecideAsync(request.Id, approve: true, "bob", null, now, CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Denied, (await store.GetAsync(request.Id, now, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task A_pending_request_expires_and_can_no_longer_be_approved()
    {
        var store = await Open();
        var created = DateTimeOffset.UtcNow.AddHours(-2);
        var request = Request("analyst", created);
        await store.CreateAsync(request, CancellationToken.None);
        var now = DateTimeOffset.UtcNow;
        Assert.Equal(AccessRequestStatus.Expired, (await store.GetAsync(request.Id, now, CancellationToken.None))!.Status);
        Assert.False(await store.DecideAsync(request.Id, approve: true, "alice", null, now, CancellationToken.None));
    }

    [Fact]
    public async Task Disabling_an_agent_is_seen_by_another_process_sharing_the_file()
    {
        var path = Path.Combine(TestDirectory.Create("state"), "state.db");
        var first = await SqliteStateStore.OpenAsync(path, CancellationToken.None);
        var second = await SqliteStateStore.OpenAsync(path, CancellationToken.None);
        await first.SetDisabledAsync("analyst", true, "alice", CancellationToken.None);
        Assert.True(await second.IsDisabledAsync("analyst", CancellationToken.None));
        Assert.False(await second.IsDisabledAsync("ops-bot", CancellationToken.None));
        await second.SetDisabledAsync("analyst", false, "alice", CancellationToken.None);
        Assert.False(await first.IsDisabledAsync("analyst", CancellationToken.None));
    }

    private static StatementApproval Statement(DateTimeOffset created, int required = 1) =>
        new(StatementApproval.NewId(), "ops-bot", "ops-bot", "dev", "shop", StatementApproval.Hash("delete from payments where id = $1"), StatementApproval.Hash("[\"5\"]"),
            "delete from payments where id = $1", "[\"5\"]", "delete: public.payments(delete)", "guard.payments", "Payments are changed by people", required,
            StatementApprovalStatus.Pending, created, created + TimeSpan.FromHours(1));

    [Fact]
    public async Task A_statement_request_expires_undecided_and_an_approval_lapses_unused()
    {
        var store = await Open();
        var now = DateTimeOffset.UtcNow;
        var stale = Statement(now);
        await store.CreateStatementAsync(stale, CancellationToken.None);
        var later = now + TimeSpan.FromHours(2);
        Assert.Equal(StatementApprovalStatus.Expired, (await store.GetStatementAsync(stale.Id, later, CancellationToken.None))!.Status);
        Assert.Null(await store.FindLiveAsync("ops-bot", "shop", stale.StatementHash, stale.ParametersHash, later - TimeSpan.FromHours(1), later, CancellationToken.None));
        Assert.Null(await store.VoteAsync(stale.Id, new ApprovalVote("alice", true, later, null), TimeSpan.FromMinutes(15), later, CancellationToken.None));

        var fresh = Statement(now) with { Id = StatementApproval.NewId() };
        await store.CreateStatementAsync(fresh, CancellationToken.None);
        Assert.Equal(StatementApprovalStatus.Approved, (await store.VoteAsync(fresh.Id, new ApprovalVote("alice", true, now, "ok"), TimeSpan.FromMinutes(15), now, CancellationToken.None))!.Status);
        Assert.False(await store.ClaimAsync(fresh.Id, now + TimeSpan.FromMinutes(16), CancellationToken.None));
        Assert.True(await store.ClaimAsync(fresh.Id, now + TimeSpan.FromMinutes(1), CancellationToken.None));
        Assert.False(await store.ClaimAsync(fresh.Id, now + TimeSpan.FromMinutes(2), CancellationToken.None));
    }

    [Fact]
    public async Task A_kept_result_is_handed_over_exactly_once_and_not_after_it_expires()
    {
        var store = await Open();
        var now = DateTimeOffset.UtcNow;
        var request = Statement(now);
        await store.CreateStatementAsync(request, CancellationToken.None);
        await store.FinishRunAsync(request.Id, "{\"kept\":1}", now + TimeSpan.FromHours(1), CancellationToken.None);
        Assert.Equal("{\"kept\":1}", await store.TakeResultAsync(request.Id, now, CancellationToken.None));
        Assert.Null(await store.TakeResultAsync(request.Id, now, CancellationToken.None));

        await store.FinishRunAsync(request.Id, "{\"kept\":2}", now + TimeSpan.FromHours(1), CancellationToken.None);
        Assert.Null(await store.TakeResultAsync(request.Id, now + TimeSpan.FromHours(2), CancellationToken.None));
    }

    private static async Task<(SqliteStateStore Store, string Path, List<AuditRecord> Records)> ChainedAsync(int count)
    {
        var path = Path.Combine(TestDirectory.Create("chain"), "state.db");
        var store = await SqliteStateStore.OpenAsync(path, CancellationToken.None);
        var records = new List<AuditRecord>();
        for (var i = 0; i < count; i++)
        {
            var record = Record($"agent{i}", Verdict.Started, DateTimeOffset.UtcNow.AddSeconds(i));
            await store.BeginAsync(record, CancellationToken.None);
            await store.CompleteAsync(record with { Decision = Verdict.Allowed, RowCount = i }, CancellationToken.None);
            records.Add(record);
        }

        return (store, path, records);
    }

    private static async Task TamperAsync(string path, string sql)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task An_untouched_audit_chain_verifies_with_open_calls_counted_apart()
    {
        var (store, _, _) = await ChainedAsync(5);
        await store.BeginAsync(Record("late", Verdict.Started, DateTimeOffset.UtcNow), CancellationToken.None);
        var report = await store.VerifyChainAsync(null, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        Assert.Equal(5, report.Sealed);
        Assert.Equal(1, report.Open);
    }

    [Theory]
    [InlineData("update audit set reason = 'nothing to see' where agent = 'agent2'", "was modified after it was sealed")]
    [InlineData("delete from audit where agent = 'agent3'", "was deleted")]
    [InlineData("insert into audit (id, time_ms, tool, transport, groups_json, decision, rule, reason, duration_ms) values ('aud_forged', 0, 'query', 'x', '[]', 'Allowed', 'r', 'r', 0)", "was never sealed")]
    [InlineData("update audit_chain set sealed = replace(sealed, 'because', 'because!') where seq = 2", "was altered after it was sealed")]
    [InlineData("delete from audit_chain where seq = 3", "are missing")]
    [InlineData("update audit_chain set seq = seq + 100 where seq = 2; update audit_chain set seq = 2 where seq = 4; update audit_chain set seq = 4 where seq = 102", "does not follow the link before it")]
    public async Task Verification_names_each_kind_of_tampering(string tampering, string finding)
    {
        var (store, path, _) = await ChainedAsync(5);
        await TamperAsync(path, tampering);
        var report = await store.VerifyChainAsync(null, CancellationToken.None);
        Assert.False(report.Intact);
        Assert.Contains(report.Problems, p => p.Contains(finding, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Concurrent_writers_keep_one_consistent_chain()
    {
        var path = Path.Combine(TestDirectory.Create("chain"), "state.db");
        var first = await SqliteStateStore.OpenAsync(path, CancellationToken.None);
        var second = await SqliteStateStore.OpenAsync(path, CancellationToken.None);
        await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
        {
            var store = i % 2 == 0 ? first : second;
            var record = Record($"writer{i}", Verdict.Started, DateTimeOffset.UtcNow);
            await store.BeginAsync(record, CancellationToken.None);
            await store.CompleteAsync(record with { Decision = Verdict.Allowed }, CancellationToken.None);
        }));
        var report = await first.VerifyChainAsync(null, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        Assert.Equal(40, report.Sealed);
    }

    [Fact]
    public async Task A_purge_leaves_a_signed_checkpoint_so_the_rest_still_verifies_and_a_forged_cut_does_not()
    {
        var path = Path.Combine(TestDirectory.Create("chain"), "state.db");
        var store = await SqliteStateStore.OpenAsync(path, CancellationToken.None);
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 6; i++)
        {
            var record = Record($"agent{i}", Verdict.Started, i < 3 ? now.AddDays(-10).AddSeconds(i) : now.AddSeconds(i));
            await store.BeginAsync(record, CancellationToken.None);
            await store.CompleteAsync(record with { Decision = Verdict.Allowed }, CancellationToken.None);
        }

        static string Sign(string text) => "signed:" + AuditChain.Hash("key", text);
        static bool Valid(string text, string signature) => signature == Sign(text);
        var checkpoint = await store.PurgeAsync(now.AddDays(-1), Sign, CancellationToken.None);
        Assert.Equal(3, checkpoint!.Purged);
        Assert.Equal(3, (await store.ListAsync(new AuditQuery(Limit: 100), CancellationToken.None)).Count);
        var report = await store.VerifyChainAsync(Valid, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        Assert.Equal(3, report.Sealed);
        Assert.Null(await store.PurgeAsync(now.AddDays(-1), Sign, CancellationToken.None));

        await TamperAsync(path, "update audit_checkpoints set through_seq = 4");
        Assert.Contains((await store.VerifyChainAsync(Valid, CancellationToken.None)).Problems, p => p.Contains("not signed by the checkpoint key", StringComparison.Ordinal));
    }
}
