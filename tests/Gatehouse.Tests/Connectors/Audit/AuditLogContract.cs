using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>
/// What every audit store promises, run against each: the embedded SQLite file and the PostgreSQL store that several gateway
/// instances share. Each test gets a fresh, empty store.
/// </summary>
public abstract class AuditLogContract
{
    /// <summary>A new, empty store; calling again opens a second handle on the same store (another gateway process).</summary>
    protected abstract Task<IAuditLog> OpenAsync(bool again = false);

    /// <summary>Changes the store behind the gateway's back, as someone with write access to it could.</summary>
    protected abstract Task TamperAsync(string sql);

    protected static AuditRecord Record(string agent, Verdict decision, DateTimeOffset time) => new()
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

    private static string Sign(string text) => "signed:" + AuditChain.Hash("key", text);

    private static bool Valid(string text, string signature) => signature == Sign(text);

    protected static async Task<AuditRecord> WriteAsync(IAuditLog log, AuditRecord record)
    {
        await log.BeginAsync(record with { Decision = Verdict.Started }, CancellationToken.None);
        await log.CompleteAsync(record, CancellationToken.None);
        return record;
    }

    protected static async Task AssertChainIntactAsync(IAuditLog log, int sealedRecords)
    {
        var report = await log.VerifyChainAsync(null, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        Assert.Equal(sealedRecords, report.Sealed);
    }

    private async Task<(IAuditLog Log, List<AuditRecord> Records)> ChainedAsync(int count)
    {
        var log = await OpenAsync();
        var records = new List<AuditRecord>();
        for (var i = 0; i < count; i++)
        {
            records.Add(await WriteAsync(log, Record($"agent{i}", Verdict.Allowed, DateTimeOffset.UtcNow.AddSeconds(i)) with { RowCount = i }));
        }

        return (log, records);
    }

    [Fact]
    public async Task A_record_whose_text_holds_nul_is_stored_with_each_shown_and_sealed()
    {
        // PostgreSQL refuses NUL in text: SQL an agent sent with one left its attempt without a record.
        var log = await OpenAsync();
        var record = Record("agent", Verdict.Denied, DateTimeOffset.UtcNow) with { Sql = "drop table x\0", Connection = "sh\0p", Groups = ["g\0"] };

        await WriteAsync(log, record);

        var stored = await log.GetAsync(record.Id, CancellationToken.None);
        Assert.Equal(("drop table x\uFFFD", "sh\uFFFDp", "g\uFFFD"), (stored!.Sql, stored.Connection, stored.Groups.Single()));
        await AssertChainIntactAsync(log, sealedRecords: 1);
    }

    [Fact]
    public async Task A_record_whose_text_holds_half_a_surrogate_pair_is_stored_with_each_shown_and_sealed()
    {
        // A connection name cut at 100 characters in the middle of an emoji: Npgsql cannot encode the half left, and the
        // refused call had no record. Whole pairs are kept.
        var log = await OpenAsync();
        var record = Record("agent", Verdict.Denied, DateTimeOffset.UtcNow) with
        {
            Connection = new string('a', 99) + "\uD83D",
            Sql = "select '\uDE00', '\U0001F600'",
            Groups = ["\uD83D\uD83D\uDE00"],
        };

        await WriteAsync(log, record);

        var stored = await log.GetAsync(record.Id, CancellationToken.None);
        Assert.Equal(
            (new string('a', 99) + "\uFFFD", "select '\uFFFD', '\U0001F600'", "\uFFFD\U0001F600"),
            (stored!.Connection, stored.Sql, stored.Groups.Single()));
        await AssertChainIntactAsync(log, sealedRecords: 1);
    }

    [Fact]
    public async Task Under_process_crash_durability_records_are_stored_sealed_and_seen_by_another_handle()
    {
        var log = await OpenAsync();
        ((Gatehouse.Connectors.State.SqlAuditLog)log).Durability = AuditDurability.ProcessCrash;
        var records = new List<AuditRecord>();
        for (var i = 0; i < 3; i++)
        {
            records.Add(await WriteAsync(log, Record($"fast{i}", Verdict.Allowed, DateTimeOffset.UtcNow.AddSeconds(i))));
        }

        var other = await OpenAsync(again: true);
        foreach (var record in records)
        {
            Assert.Equal(record.Agent, (await other.GetAsync(record.Id, CancellationToken.None))!.Agent);
        }

        await AssertChainIntactAsync(other, sealedRecords: 3);
    }

    [Fact]
    public async Task A_started_record_is_seen_by_another_handle_before_the_call_finishes_and_calls_alternating_commits_keep_the_chain()
    {
        var log = await OpenAsync();
        var other = await OpenAsync(again: true);
        for (var i = 0; i < 4; i++)
        {
            // Started records commit without waiting for the disk, finished ones with it: the writer switches each time.
            var record = Record($"call{i}", Verdict.Allowed, DateTimeOffset.UtcNow.AddSeconds(i));
            await log.BeginAsync(record with { Decision = Verdict.Started }, CancellationToken.None);
            Assert.Equal(Verdict.Started, (await other.GetAsync(record.Id, CancellationToken.None))!.Decision);
            await log.CompleteAsync(record, CancellationToken.None);
            Assert.Equal(Verdict.Allowed, (await other.GetAsync(record.Id, CancellationToken.None))!.Decision);
        }

        await AssertChainIntactAsync(other, sealedRecords: 4);
    }

    [Fact]
    public async Task Records_written_one_after_another_through_the_writers_reused_statements_are_each_stored_whole()
    {
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        // Short then long, null then set, set then null: a reused statement must carry each record's own values.
        var first = await WriteAsync(log, Record("a", Verdict.Allowed, now) with { Sql = "select 1", RowCount = null, Error = "broken" });
        var second = await WriteAsync(log, Record("b", Verdict.Failed, now.AddSeconds(1)) with { Sql = "select '" + new string('x', 20_000) + "'", RowCount = 7, Error = null });
        var third = await WriteAsync(log, Record("c", Verdict.Denied, now.AddSeconds(2)) with { Sql = "select 2", RowCount = null, Groups = [] });
        foreach (var expected in new[] { first, second, third })
        {
            var stored = (await log.GetAsync(expected.Id, CancellationToken.None))!;
            Assert.Equal((expected.Agent, expected.Sql, expected.RowCount, expected.Error, expected.Decision), (stored.Agent, stored.Sql, stored.RowCount, stored.Error, stored.Decision));
            Assert.Equal(expected.Groups, stored.Groups);
        }

        await AssertChainIntactAsync(log, sealedRecords: 3);
    }

    [Fact]
    public async Task A_started_record_is_completed_in_place_with_its_capture()
    {
        var log = await OpenAsync();
        var record = Record("analyst", Verdict.Started, DateTimeOffset.UtcNow);
        await log.BeginAsync(record, CancellationToken.None);
        await log.CompleteAsync(record with { Decision = Verdict.Allowed, RowCount = 3, Result = """{"columns":["id"],"rows":[[1]]}""" }, CancellationToken.None);
        var stored = await log.GetAsync(record.Id, CancellationToken.None);
        Assert.Equal(Verdict.Allowed, stored!.Decision);
        Assert.Equal(3, stored.RowCount);
        Assert.Equal(["g1"], stored.Groups);
        Assert.Equal("""{"columns":["id"],"rows":[[1]]}""", stored.Result);
        Assert.Single(await log.ListAsync(new AuditQuery(), CancellationToken.None));
    }

    [Fact]
    public async Task A_started_record_completed_with_another_time_and_agent_is_stored_and_found_as_completed()
    {
        // The gateway never does this (a call's time and agent are set before it starts); the store must still keep what it
        // sealed, indexes included.
        var log = await OpenAsync();
        var started = Record("first", Verdict.Started, DateTimeOffset.UtcNow.AddMinutes(-10));
        await log.BeginAsync(started, CancellationToken.None);
        var finished = started with { Agent = "second", Time = DateTimeOffset.UtcNow, Decision = Verdict.Allowed };
        await log.CompleteAsync(finished, CancellationToken.None);

        var stored = await log.GetAsync(started.Id, CancellationToken.None);
        Assert.Equal("second", stored!.Agent);
        Assert.Equal(finished.Time.ToUnixTimeMilliseconds(), stored.Time.ToUnixTimeMilliseconds());
        Assert.Empty(await log.ListAsync(new AuditQuery(Agent: "first"), CancellationToken.None));
        Assert.Single(await log.ListAsync(new AuditQuery(Agent: "second", Since: DateTimeOffset.UtcNow.AddMinutes(-1)), CancellationToken.None));
        Assert.Empty(await log.ListAsync(new AuditQuery(Until: DateTimeOffset.UtcNow.AddMinutes(-5)), CancellationToken.None));
        await AssertChainIntactAsync(log, sealedRecords: 1);
    }

    [Fact]
    public async Task Listing_filters_by_agent_time_and_decision_newest_first()
    {
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        await WriteAsync(log, Record("analyst", Verdict.Allowed, now.AddHours(-2)));
        await WriteAsync(log, Record("analyst", Verdict.Denied, now.AddMinutes(-5)));
        await WriteAsync(log, Record("ops-bot", Verdict.Denied, now.AddMinutes(-1)));

        Assert.Equal(2, (await log.ListAsync(new AuditQuery(Agent: "analyst"), CancellationToken.None)).Count);
        Assert.Equal(2, (await log.ListAsync(new AuditQuery(Since: now.AddHours(-1)), CancellationToken.None)).Count);
        Assert.Single(await log.ListAsync(new AuditQuery(Until: now.AddHours(-1)), CancellationToken.None));
        var denied = await log.ListAsync(new AuditQuery(Decision: Verdict.Denied), CancellationToken.None);
        Assert.Equal(["ops-bot", "analyst"], denied.Select(r => r.Agent));
    }

    [Fact]
    public async Task Listing_filters_by_connection_table_and_text_and_pages()
    {
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        await WriteAsync(log, Record("a", Verdict.Allowed, now.AddSeconds(1)) with { Connection = "shop", Classification = "select: public.orders(read)", Sql = "select * from orders" });
        await WriteAsync(log, Record("a", Verdict.Denied, now.AddSeconds(2)) with { Connection = "shop", Classification = "delete: public.big_orders(delete)", Sql = "DELETE from big_orders" });
        await WriteAsync(log, Record("a", Verdict.Allowed, now.AddSeconds(3)) with { Connection = "crm", Classification = "select: public.orders(read), public.customers(read)", Sql = "select 2" });

        Assert.Equal(2, (await log.ListAsync(new AuditQuery(Connection: "shop"), CancellationToken.None)).Count);
        var orders = await log.ListAsync(new AuditQuery(Table: "orders"), CancellationToken.None);
        Assert.Equal(["select 2", "select * from orders"], orders.Select(r => r.Sql));
        Assert.Single(await log.ListAsync(new AuditQuery(Table: "public.customers"), CancellationToken.None));
        Assert.Equal("DELETE from big_orders", Assert.Single(await log.ListAsync(new AuditQuery(Text: "delete FROM"), CancellationToken.None)).Sql);
        Assert.Empty(await log.ListAsync(new AuditQuery(Text: "%"), CancellationToken.None));

        var first = await log.ListAsync(new AuditQuery(Limit: 2), CancellationToken.None);
        var second = await log.ListAsync(new AuditQuery(Limit: 2, Offset: 2), CancellationToken.None);
        Assert.Equal(["select 2", "DELETE from big_orders"], first.Select(r => r.Sql));
        Assert.Equal("select * from orders", Assert.Single(second).Sql);
    }

    [Fact]
    public async Task Sessions_group_calls_and_agents_show_first_and_last_activity()
    {
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        await WriteAsync(log, Record("analyst", Verdict.Allowed, now.AddMinutes(-3)) with { SessionId = "s1", Issuer = "https://idp.example.com/" });
        await WriteAsync(log, Record("analyst", Verdict.Denied, now.AddMinutes(-2)) with { SessionId = "s1" });
        await WriteAsync(log, Record("ops-bot", Verdict.Failed, now.AddMinutes(-1)) with { SessionId = "s2" });

        var sessions = await log.SessionsAsync(null, 10, CancellationToken.None);
        Assert.Equal(["s2", "s1"], sessions.Select(s => s.SessionId));
        Assert.Equal((2, 1, 0), (sessions[1].Calls, sessions[1].Denied, sessions[1].Failed));
        Assert.Equal(["s1"], (await log.SessionsAsync("analyst", 10, CancellationToken.None)).Select(s => s.SessionId));
        Assert.Equal(2, (await log.SessionAsync("s1", CancellationToken.None)).Count);

        var analyst = Assert.Single(await log.AgentActivityAsync(CancellationToken.None), a => a.Agent == "analyst");
        Assert.Equal((2L, 1L), (analyst.Calls, analyst.Denials));
        Assert.True(analyst.FirstSeen < analyst.LastSeen);
        Assert.Equal(["https://idp.example.com/"], analyst.Issuers);
    }

    [Fact]
    public async Task Export_reads_every_record_in_the_window_oldest_first_across_pages()
    {
        var log = await OpenAsync();
        var start = DateTimeOffset.UtcNow.AddHours(-1);
        // More than one export page, several sharing a millisecond, so the keyset paging is exercised.
        for (var i = 0; i < 1203; i++)
        {
            await log.CompleteAsync(Record($"a{i}", Verdict.Allowed, start.AddMilliseconds(i / 3)), CancellationToken.None);
        }

        var all = new List<AuditRecord>();
        await foreach (var record in log.ExportAsync(null, null, CancellationToken.None))
        {
            all.Add(record);
        }

        Assert.Equal(1203, all.Count);
        Assert.Equal(1203, all.Select(r => r.Id).Distinct().Count());
        Assert.Equal(all.OrderBy(r => r.Time).Select(r => r.Time), all.Select(r => r.Time));

        var window = new List<AuditRecord>();
        await foreach (var record in log.ExportAsync(start.AddMilliseconds(100), start.AddMilliseconds(200), CancellationToken.None))
        {
            window.Add(record);
        }

        Assert.Equal(300, window.Count);
    }

    [Fact]
    public async Task An_untouched_audit_chain_verifies_with_open_calls_counted_apart()
    {
        var (log, _) = await ChainedAsync(5);
        await log.BeginAsync(Record("late", Verdict.Started, DateTimeOffset.UtcNow), CancellationToken.None);
        var report = await log.VerifyChainAsync(null, CancellationToken.None);
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
    [InlineData("update audit set decision = 'Approved-ish' where agent = 'agent2'", "no longer reads as a record")]
    [InlineData("update audit set groups_json = 'not json' where agent = 'agent4'", "no longer reads as a record")]
    [InlineData("update audit set decision = '1' where agent = 'agent2'", "no longer reads as a record")]
    [InlineData("delete from audit where id = (select record_id from audit_chain where seq = 3); update audit_chain set record_id = (select record_id from audit_chain where seq = 5) where seq = 3", "a link was relabelled to hide a record")]
    [InlineData("update audit_chain set seq = seq + 100 where seq = 2; update audit_chain set seq = 2 where seq = 4; update audit_chain set seq = 4 where seq = 102", "does not follow the link before it")]
    public async Task Verification_names_each_kind_of_tampering(string tampering, string finding)
    {
        var (log, _) = await ChainedAsync(5);
        await TamperAsync(tampering);
        var report = await log.VerifyChainAsync(null, CancellationToken.None);
        Assert.False(report.Intact);
        Assert.Contains(report.Problems, p => p.Contains(finding, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_admin_action_cut_off_before_its_seal_is_an_open_call_not_a_record_inserted_around_the_gateway()
    {
        var log = await OpenAsync();
        // The gateway stops (kill -9, a failed flush) between the action's two writes.
        var cutOff = new CompletionFails(log);
        await Assert.ThrowsAsync<IOException>(() => cutOff.RecordAsync(DateTimeOffset.UtcNow, "approvals approve", "admin-api", "ops", "req_1", done: true, "approval.approve", "approved"));

        var report = await log.VerifyChainAsync(null, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        Assert.Equal(1, report.Open);
    }

    private sealed class CompletionFails(IAuditStore store) : IAuditStore
    {
        public ValueTask BeginAsync(AuditRecord record, CancellationToken cancellationToken) => store.BeginAsync(record, cancellationToken);

        public ValueTask CompleteAsync(AuditRecord record, CancellationToken cancellationToken) => throw new IOException("the gateway stopped here");

        public ValueTask<AuditRecord?> GetAsync(string id, CancellationToken cancellationToken) => store.GetAsync(id, cancellationToken);

        public ValueTask<IReadOnlyList<AuditRecord>> ListAsync(AuditQuery query, CancellationToken cancellationToken) => store.ListAsync(query, cancellationToken);
    }

    [Fact]
    public async Task A_record_that_cannot_be_stored_fails_alone_and_not_the_writes_it_shared_a_commit_with()
    {
        var log = await OpenAsync();
        var first = Record("first", Verdict.Started, DateTimeOffset.UtcNow);
        await log.BeginAsync(first, CancellationToken.None);

        // Held back, the writes queue up and the writer takes them all into one commit, which the duplicate fails.
        var others = Enumerable.Range(0, 20).Select(i => Record($"other{i}", Verdict.Started, DateTimeOffset.UtcNow)).ToList();
        Task duplicate;
        List<Task> writes;
        using (await ((SqlAuditLog)log).HoldCommitsAsync())
        {
            // Another record under the same id: a store that finds a failed write stored exactly as written counts it as stored.
            duplicate = log.BeginAsync(first with { Agent = "impostor" }, CancellationToken.None).AsTask();
            writes = others.Select(r => log.BeginAsync(r, CancellationToken.None).AsTask()).ToList();
            Assert.DoesNotContain(writes.Append(duplicate), w => w.IsCompleted);
        }

        await Task.WhenAll(writes.Append(duplicate.ContinueWith(_ => { }, TaskScheduler.Default)));

        Assert.True(duplicate.IsFaulted);
        foreach (var record in others)
        {
            Assert.NotNull(await log.GetAsync(record.Id, CancellationToken.None));
        }
    }

    [Fact]
    public async Task Concurrent_writers_keep_one_consistent_chain()
    {
        var first = await OpenAsync();
        var second = await OpenAsync(again: true);
        await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
            await WriteAsync(i % 2 == 0 ? first : second, Record($"writer{i}", Verdict.Allowed, DateTimeOffset.UtcNow))));
        await AssertChainIntactAsync(first, sealedRecords: 40);
    }

    [Fact]
    public async Task A_purge_leaves_a_signed_checkpoint_so_the_rest_still_verifies_and_a_forged_cut_does_not()
    {
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 6; i++)
        {
            await WriteAsync(log, Record($"agent{i}", Verdict.Allowed, i < 3 ? now.AddDays(-10).AddSeconds(i) : now.AddSeconds(i)));
        }

        var checkpoint = await log.PurgeAsync(new RetentionCut(now.AddDays(-1)), Sign, CancellationToken.None);
        Assert.Equal(3, checkpoint!.Purged);
        Assert.Equal(3, (await log.ListAsync(new AuditQuery(Limit: 100), CancellationToken.None)).Count);
        var report = await log.VerifyChainAsync(Valid, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        Assert.Equal(3, report.Sealed);
        Assert.Null(await log.PurgeAsync(new RetentionCut(now.AddDays(-1)), Sign, CancellationToken.None));

        await TamperAsync("update audit_checkpoints set through_seq = 4");
        Assert.Contains((await log.VerifyChainAsync(Valid, CancellationToken.None)).Problems, p => p.Contains("not signed by the checkpoint key", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_purge_takes_the_started_records_of_calls_that_never_finished_once_they_are_past_the_cut_and_a_day_old()
    {
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        await WriteAsync(log, Record("old", Verdict.Allowed, now.AddDays(-10)));
        var abandoned = Record("crashed", Verdict.Started, now.AddDays(-10).AddSeconds(1));
        await log.BeginAsync(abandoned, CancellationToken.None);
        var lateButAlive = Record("slow", Verdict.Started, now.AddHours(-2));
        await log.BeginAsync(lateButAlive, CancellationToken.None);
        await WriteAsync(log, Record("new", Verdict.Allowed, now));

        // By count, the cut is after the two-hour-old call's start too, but a call that young may still finish.
        var checkpoint = await log.PurgeAsync(new RetentionCut(null, KeepNewest: 1), Sign, CancellationToken.None);
        Assert.Equal(2, checkpoint!.Purged);
        Assert.Null(await log.GetAsync(abandoned.Id, CancellationToken.None));
        var report = await log.VerifyChainAsync(Valid, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        Assert.Equal((1, 1), (report.Sealed, report.Open));

        // Each finishes after all, the purged one too: its record is written whole, and sealed.
        await log.CompleteAsync(lateButAlive with { Decision = Verdict.Allowed }, CancellationToken.None);
        await log.CompleteAsync(abandoned with { Decision = Verdict.Failed }, CancellationToken.None);
        Assert.Equal(Verdict.Allowed, (await log.GetAsync(lateButAlive.Id, CancellationToken.None))!.Decision);
        Assert.Equal(Verdict.Failed, (await log.GetAsync(abandoned.Id, CancellationToken.None))!.Decision);
        var after = await log.VerifyChainAsync(Valid, CancellationToken.None);
        Assert.True(after.Intact, string.Join("; ", after.Problems));
        Assert.Equal((3, 0), (after.Sealed, after.Open));
    }

    [Fact]
    public async Task A_purge_takes_only_the_chains_old_beginning_even_when_an_old_record_was_sealed_after_newer_ones()
    {
        // A call that waited for approval (or a clock stepped back) seals a record from before the cutoff after newer ones.
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        await WriteAsync(log, Record("old1", Verdict.Allowed, now.AddDays(-10)));
        await WriteAsync(log, Record("new1", Verdict.Allowed, now.AddMinutes(-2)));
        await WriteAsync(log, Record("new2", Verdict.Allowed, now.AddMinutes(-1)));
        await WriteAsync(log, Record("old2", Verdict.Allowed, now.AddDays(-10).AddSeconds(1)));
        await WriteAsync(log, Record("new3", Verdict.Allowed, now));

        Assert.Equal(1, (await log.PurgeAsync(new RetentionCut(now.AddDays(-1)), Sign, CancellationToken.None))!.Purged);
        var left = await log.ListAsync(new AuditQuery(Limit: 100), CancellationToken.None);
        Assert.Equal(["new1", "new2", "new3", "old2"], left.Select(r => r.Agent!).Order(StringComparer.Ordinal));
        Assert.True((await log.VerifyChainAsync(Valid, CancellationToken.None)).Intact);
    }

    [Fact]
    public async Task Retention_by_count_keeps_the_newest_records_and_the_chain_verifies()
    {
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 10; i++)
        {
            await WriteAsync(log, Record($"agent{i}", Verdict.Allowed, now.AddMinutes(i - 10)));
        }

        var checkpoint = await log.PurgeAsync(new RetentionCut(null, KeepNewest: 4), Sign, CancellationToken.None);
        Assert.Equal(6, checkpoint!.Purged);
        var left = await log.ListAsync(new AuditQuery(), CancellationToken.None);
        Assert.Equal(["agent9", "agent8", "agent7", "agent6"], left.Select(r => r.Agent));
        Assert.True((await log.VerifyChainAsync(Valid, CancellationToken.None)).Intact);
    }

    [Fact]
    public async Task A_retention_age_is_measured_by_the_stores_own_clock()
    {
        var log = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        await WriteAsync(log, Record("two-hours-old", Verdict.Allowed, now.AddHours(-2)));
        await WriteAsync(log, Record("ten-minutes-old", Verdict.Allowed, now.AddMinutes(-10)));

        var checkpoint = await log.PurgeAsync(new RetentionCut(null) { OlderThan = TimeSpan.FromHours(1) }, Sign, CancellationToken.None);

        Assert.Equal(1, checkpoint!.Purged);
        Assert.Equal(["ten-minutes-old"], (await log.ListAsync(new AuditQuery(), CancellationToken.None)).Select(r => r.Agent));
    }

    [Fact]
    public async Task The_chain_goes_on_from_the_checkpoint_after_a_purge_took_every_record()
    {
        var log = await OpenAsync();
        var old = DateTimeOffset.UtcNow.AddDays(-30);
        await WriteAsync(log, Record("a", Verdict.Allowed, old));
        await WriteAsync(log, Record("b", Verdict.Allowed, old.AddSeconds(1)));
        Assert.Equal(2, (await log.PurgeAsync(new RetentionCut(DateTimeOffset.UtcNow.AddDays(-1)), Sign, CancellationToken.None))!.Purged);

        await WriteAsync(log, Record("c", Verdict.Allowed, DateTimeOffset.UtcNow));
        var report = await log.VerifyChainAsync(Valid, CancellationToken.None);
        Assert.True(report.Intact, string.Join("; ", report.Problems));
        Assert.Equal(1, report.Sealed);
    }
}
