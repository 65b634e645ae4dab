using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>
/// What every state store promises about access requests, statement approvals and agent switches, run against the SQLite
/// state file and against PostgreSQL (the audit log has its own contract).
/// </summary>
public abstract class StateStoreContract
{
    /// <summary>A new, empty store; calling again opens a second handle on the same store (another gateway process).</summary>
    protected abstract Task<SqlStateStore> OpenAsync(bool again = false);

    /// <summary>Runs SQL on the store's tables outside the gateway: as an admin by hand, or a gateway of an older version.</summary>
    protected abstract Task ExecuteAsync(string sql);

    /// <summary>
    /// How long a change made through one handle may take to be seen through another: none for SQLite, whose every read goes
    /// to the file; for PostgreSQL, under the second that several gateway instances promise.
    /// </summary>
    protected virtual TimeSpan SeenElsewhereWithin => TimeSpan.Zero;

    /// <summary>Asserts that <paramref name="seen"/> holds within <see cref="SeenElsewhereWithin"/>, checking at once and then every 10 ms.</summary>
    private async Task SeenSoonAsync(Func<Task<bool>> seen, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            // A read that began within the bound must see the change; one that began later says nothing about it.
            var began = clock.Elapsed;
            if (await seen())
            {
                return;
            }

            Assert.True(began < SeenElsewhereWithin, $"{what}: not seen by the other handle within {SeenElsewhereWithin.TotalMilliseconds} ms");
            await Task.Delay(10);
        }
    }

    // A request as request_access files one under the default pending_ttl of an hour.
    protected static AccessRequest Request(string agent, DateTimeOffset created) =>
        new(AccessRequest.NewId(), agent, agent, "dev", "shop", [new RelationName("public", "payments")], AccessLevel.Read, "audit", TimeSpan.FromHours(1), AccessRequestStatus.Pending, created)
        {
            PendingUntil = created.AddHours(1),
        };

    [Fact]
    public async Task A_request_stored_before_quoted_names_were_refused_still_reads_back()
    {
        // Such a name is refused where it comes in now, but one already stored must not make every listing of requests fail.
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var request = Request("analyst", now) with { Tables = [new RelationName("public", "\"Orders\"")] };
        await store.CreateAsync(request, int.MaxValue, CancellationToken.None);

        Assert.Equal(request.Tables, (await store.GetAsync(request.Id, now, CancellationToken.None))!.Tables);
        Assert.Contains(await store.ListAsync(null, now, CancellationToken.None), r => r.Id == request.Id);
    }

    [Fact]
    public async Task An_approved_request_grants_access_until_it_expires()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var request = Request("analyst", now);
        await store.CreateAsync(request, int.MaxValue, CancellationToken.None);
        Assert.Empty(await store.ActiveGrantsAsync("analyst", now, CancellationToken.None));

        Assert.True(await store.DecideAsync(request.Id, new ApprovalVote("alice", true, now, "ok"), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
        var grant = Assert.Single(await store.ActiveGrantsAsync("analyst", now.AddMinutes(59), CancellationToken.None));
        Assert.True(grant.Covers(new RelationName("public", "payments")));
        Assert.Empty(await store.ActiveGrantsAsync("analyst", now.AddMinutes(61), CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Expired, (await store.GetAsync(request.Id, now.AddMinutes(61), CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task An_approved_grant_lasts_no_longer_than_the_policy_in_force_allows()
    {
        // Asked for an hour when max_grant allowed it; approved after a reload cut max_grant to 10 minutes, it had the hour.
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var request = Request("analyst", now);
        await store.CreateAsync(request, int.MaxValue, CancellationToken.None);

        Assert.True(await store.DecideAsync(request.Id, new ApprovalVote("alice", true, now, null), 1, TimeSpan.FromMinutes(10), now, CancellationToken.None));

        Assert.Equal(now.AddMinutes(10).ToUnixTimeMilliseconds(), (await store.GetAsync(request.Id, now, CancellationToken.None))!.GrantExpiresAt!.Value.ToUnixTimeMilliseconds());
        Assert.Single(await store.ActiveGrantsAsync("analyst", now.AddMinutes(9), CancellationToken.None));
        Assert.Empty(await store.ActiveGrantsAsync("analyst", now.AddMinutes(11), CancellationToken.None));
    }

    [Fact]
    public async Task Filings_at_the_same_moment_cannot_together_pass_the_cap_on_waiting_requests()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var agent = "flooder-" + Guid.NewGuid().ToString("N")[..8];
        var access = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => store.CreateAsync(Request(agent, now.AddMilliseconds(-i)), 5, CancellationToken.None).AsTask()));
        Assert.Equal(5, access.Count(waiting => waiting < 5));
        Assert.Equal(5, await store.CountPendingAsync(agent, now, CancellationToken.None));

        var statements = await Task.WhenAll(Enumerable.Range(0, 16).Select(i =>
            store.CreateStatementAsync(Statement(now) with { Id = StatementApproval.NewId(), Agent = agent, ParametersHash = StatementApproval.Hash($"[\"{i}\"]") }, 5, DateTimeOffset.UnixEpoch, CancellationToken.None).AsTask()));
        Assert.Equal(5, statements.Count(filing => filing.Filed(5)));
        Assert.Equal(5, await store.CountPendingStatementsAsync(agent, now, CancellationToken.None));

        // Another agent's cap is its own.
        Assert.Equal(0, await store.CreateAsync(Request("other-" + agent, now), 5, CancellationToken.None));
    }

    [Fact]
    public async Task The_same_statement_filed_at_the_same_moment_is_one_request_that_every_filing_waits_on()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var agent = "twin-" + Guid.NewGuid().ToString("N")[..8];
        var filings = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ =>
            store.CreateStatementAsync(Statement(now) with { Id = StatementApproval.NewId(), Agent = agent }, 20, DateTimeOffset.UnixEpoch, CancellationToken.None).AsTask()));

        var filed = Assert.Single(filings, f => f.Filed(20));
        var pending = Assert.Single(await store.ListStatementsOfAgentAsync(agent, 20, now, CancellationToken.None));
        Assert.All(filings.Where(f => !f.Filed(20)), f => Assert.Equal(pending.Id, f.Joined?.Id));

        // Another person's, other parameters', or a decided one's statement is another request.
        Assert.True((await store.CreateStatementAsync(Statement(now) with { Id = StatementApproval.NewId(), Agent = agent, DelegatedBy = "alice" }, 20, DateTimeOffset.UnixEpoch, CancellationToken.None)).Filed(20));
        Assert.True((await store.CreateStatementAsync(Statement(now) with { Id = StatementApproval.NewId(), Agent = agent, ParametersHash = StatementApproval.Hash("[\"6\"]") }, 20, DateTimeOffset.UnixEpoch, CancellationToken.None)).Filed(20));

        // One denied moments ago is the answer, not a reason to ask again; one denied before the window is not.
        Assert.NotNull(await store.VoteAsync(pending.Id, new ApprovalVote("alice", false, now, null), 1, TimeSpan.FromMinutes(15), now, CancellationToken.None));
        var again = Statement(now.AddSeconds(1)) with { Id = StatementApproval.NewId(), Agent = agent };
        var denied = await store.CreateStatementAsync(again, 20, now - TimeSpan.FromHours(1), CancellationToken.None);
        Assert.Equal((pending.Id, StatementApprovalStatus.Denied), (denied.Joined?.Id, denied.Joined?.Status));
        Assert.True((await store.CreateStatementAsync(again, 20, now + TimeSpan.FromSeconds(1), CancellationToken.None)).Filed(20));

        // So is one cancelled moments ago (the newest of the two).
        Assert.True(await ((IStatementApprovalStore)store).CancelAsync(again.Id, "alice", now, CancellationToken.None));
        var cancelled = await store.CreateStatementAsync(Statement(now) with { Id = StatementApproval.NewId(), Agent = agent }, 20, now - TimeSpan.FromHours(1), CancellationToken.None);
        Assert.Equal((again.Id, StatementApprovalStatus.Cancelled), (cancelled.Joined?.Id, cancelled.Joined?.Status));
    }

    [Fact]
    public async Task An_agents_own_requests_are_listed_newest_first_and_its_waiting_ones_counted()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var older = Request("analyst", now.AddMinutes(-3));
        var newer = Request("analyst", now.AddMinutes(-2));
        var denied = Request("analyst", now.AddMinutes(-1));
        var lapsed = Request("analyst", now.AddMinutes(-61));
        foreach (var request in new[] { older, newer, denied, lapsed, Request("ops-bot", now) })
        {
            await store.CreateAsync(request, int.MaxValue, CancellationToken.None);
        }

        Assert.True(await store.DecideAsync(denied.Id, new ApprovalVote("alice", false, now, null), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
        var mine = Statement(now.AddMinutes(-1));
        await store.CreateStatementAsync(mine, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        await store.CreateStatementAsync(Statement(now) with { Id = StatementApproval.NewId(), Agent = "other-bot" }, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);

        Assert.Equal([denied.Id, newer.Id], (await store.ListOfAgentAsync("analyst", 2, now, CancellationToken.None)).Select(r => r.Id));
        Assert.Equal(2, await store.CountPendingAsync("analyst", now, CancellationToken.None));
        Assert.Equal([mine.Id], (await store.ListStatementsOfAgentAsync("ops-bot", 20, now, CancellationToken.None)).Select(s => s.Id));
        Assert.Equal(1, await store.CountPendingStatementsAsync("ops-bot", now, CancellationToken.None));
        Assert.Equal(0, await store.CountPendingStatementsAsync("ops-bot", now.AddHours(2), CancellationToken.None));
    }

    [Fact]
    public async Task An_access_request_needing_two_approvals_is_granted_by_the_second_approver_and_denied_by_any_one()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var request = Request("analyst", now) with { Required = 2 };
        await store.CreateAsync(request, int.MaxValue, CancellationToken.None);

        Assert.True(await store.DecideAsync(request.Id, new ApprovalVote("alice", true, now, "ok"), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
        var waiting = (await store.GetAsync(request.Id, now, CancellationToken.None))!;
        Assert.Equal((AccessRequestStatus.Pending, 1, 2), (waiting.Status, waiting.Approvals, waiting.Required));
        Assert.Empty(await store.ActiveGrantsAsync("analyst", now, CancellationToken.None));

        // One person's second approval does not count; another's grants it.
        Assert.False(await store.DecideAsync(request.Id, new ApprovalVote("alice", true, now, null), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
        Assert.True(await store.DecideAsync(request.Id, new ApprovalVote("bob", true, now, null), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
        var granted = (await store.GetAsync(request.Id, now, CancellationToken.None))!;
        Assert.Equal((AccessRequestStatus.Approved, "bob"), (granted.Status, granted.DecidedBy));
        Assert.Equal(["alice", "bob"], granted.Votes.Select(v => v.Approver));
        Assert.Equal("ok", granted.Votes[0].Note);
        Assert.Single(await store.ActiveGrantsAsync("analyst", now, CancellationToken.None));

        // Filed when one approval did, decided when the policy asks two: it waits for the second. One denial then denies it.
        var raised = Request("analyst", now);
        await store.CreateAsync(raised, int.MaxValue, CancellationToken.None);
        Assert.True(await store.DecideAsync(raised.Id, new ApprovalVote("alice", true, now, null), 2, TimeSpan.FromDays(30), now, CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Pending, (await store.GetAsync(raised.Id, now, CancellationToken.None))!.Status);
        Assert.True(await store.DecideAsync(raised.Id, new ApprovalVote("bob", false, now, "no"), 2, TimeSpan.FromDays(30), now, CancellationToken.None));
        var denied = (await store.GetAsync(raised.Id, now, CancellationToken.None))!;
        Assert.Equal((AccessRequestStatus.Denied, "bob", "no"), (denied.Status, denied.DecidedBy, denied.DecisionNote));
        Assert.Single(await store.ActiveGrantsAsync("analyst", now, CancellationToken.None));

        // An approver withdraws an approval while the request waits for more by denying it, which ends it; once is enough.
        var withdrawn = Request("analyst", now) with { Required = 2 };
        await store.CreateAsync(withdrawn, int.MaxValue, CancellationToken.None);
        Assert.True(await store.DecideAsync(withdrawn.Id, new ApprovalVote("alice", true, now, null), 2, TimeSpan.FromDays(30), now, CancellationToken.None));
        Assert.True(await store.DecideAsync(withdrawn.Id, new ApprovalVote("alice", false, now, "changed my mind"), 2, TimeSpan.FromDays(30), now, CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Denied, (await store.GetAsync(withdrawn.Id, now, CancellationToken.None))!.Status);
        Assert.False(await store.DecideAsync(withdrawn.Id, new ApprovalVote("alice", false, now, null), 2, TimeSpan.FromDays(30), now, CancellationToken.None));
    }

    [Fact]
    public async Task The_store_refuses_an_access_request_approved_with_fewer_approvals_than_it_requires_as_an_older_gateway_would()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var twoNeeded = Request("analyst", now) with { Required = 2 };
        var oneNeeded = Request("analyst", now);
        await store.CreateAsync(twoNeeded, int.MaxValue, CancellationToken.None);
        await store.CreateAsync(oneNeeded, int.MaxValue, CancellationToken.None);

        // What a gateway from before votes were counted sends to approve: one update, one approver, no vote.
        string Approve(string id) =>
            $"UPDATE access_requests SET status = 'Approved', decided_ms = {now.ToUnixTimeMilliseconds()}, decided_by = 'alice', grant_expires_ms = {now.AddHours(1).ToUnixTimeMilliseconds()} WHERE id = '{id}' AND status = 'Pending'";
        var refused = await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => ExecuteAsync(Approve(twoNeeded.Id)));
        Assert.Contains("approved with fewer approvals than it requires", refused.Message, StringComparison.Ordinal);
        // Nor does lowering the count in the same UPDATE, or leaving out when it was decided.
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => ExecuteAsync(Approve(twoNeeded.Id).Replace("SET status = 'Approved',", "SET status = 'Approved', required = 1,", StringComparison.Ordinal)));
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(
            () => ExecuteAsync($"UPDATE access_requests SET status = 'Approved', grant_expires_ms = {now.AddHours(1).ToUnixTimeMilliseconds()} WHERE id = '{oneNeeded.Id}'"));
        Assert.Equal(AccessRequestStatus.Pending, (await store.GetAsync(twoNeeded.Id, now, CancellationToken.None))!.Status);

        // Nor one past the pending_ttl it was filed under, which such a gateway takes for an hour.
        var brief = Request("analyst", now.AddMinutes(-20)) with { PendingUntil = now.AddMinutes(-10) };
        await store.CreateAsync(brief, int.MaxValue, CancellationToken.None);
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => ExecuteAsync(Approve(brief.Id)));
        Assert.Equal(AccessRequestStatus.Expired, (await store.GetAsync(brief.Id, now, CancellationToken.None))!.Status);

        // One that needs one approval it decides as it always did; two votes decide the other.
        await ExecuteAsync(Approve(oneNeeded.Id));
        var byOlder = (await store.GetAsync(oneNeeded.Id, now, CancellationToken.None))!;
        Assert.Equal(AccessRequestStatus.Approved, byOlder.Status);
        // It wrote no vote: its decision stands as one, so the grant still names who approved it.
        Assert.Equal(("alice", true), (Assert.Single(byOlder.Votes).Approver, byOlder.Votes[0].Approve));

        // Its denial of a request a new one has an approval for joins that approval as a vote of its own.
        var mixed = Request("analyst", now) with { Required = 2 };
        await store.CreateAsync(mixed, int.MaxValue, CancellationToken.None);
        Assert.True(await store.DecideAsync(mixed.Id, new ApprovalVote("alice", true, now, null), 2, TimeSpan.FromDays(1), now, CancellationToken.None));
        await ExecuteAsync($"UPDATE access_requests SET status = 'Denied', decided_ms = {now.ToUnixTimeMilliseconds()}, decided_by = 'bob' WHERE id = '{mixed.Id}' AND status = 'Pending'");
        var denied = (await store.GetAsync(mixed.Id, now, CancellationToken.None))!;
        Assert.Equal([("alice", true), ("bob", false)], denied.Votes.Select(v => (v.Approver, v.Approve)));
        Assert.True(await store.DecideAsync(twoNeeded.Id, new ApprovalVote("alice", true, now, null), 2, TimeSpan.FromDays(1), now, CancellationToken.None));
        Assert.True(await store.DecideAsync(twoNeeded.Id, new ApprovalVote("bob", true, now, null), 2, TimeSpan.FromDays(1), now, CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Approved, (await store.GetAsync(twoNeeded.Id, now, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task Two_approvers_deciding_an_access_request_at_once_are_both_counted()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var request = Request("analyst", now) with { Required = 2 };
        await store.CreateAsync(request, int.MaxValue, CancellationToken.None);

        var counted = await Task.WhenAll(new[] { "alice", "bob" }.Select(who =>
            Task.Run(() => store.DecideAsync(request.Id, new ApprovalVote(who, true, now, null), 2, TimeSpan.FromDays(30), now, CancellationToken.None).AsTask())));

        Assert.Equal([true, true], counted);
        var granted = (await store.GetAsync(request.Id, now, CancellationToken.None))!;
        Assert.Equal((AccessRequestStatus.Approved, 2), (granted.Status, granted.Approvals));
    }

    [Fact]
    public async Task An_access_request_waits_as_long_as_the_pending_ttl_it_was_filed_under_and_one_stored_without_waits_an_hour()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var patient = Request("analyst", now) with { PendingUntil = now.AddHours(3) };
        var former = Request("analyst", now) with { PendingUntil = null };
        await store.CreateAsync(patient, int.MaxValue, CancellationToken.None);
        await store.CreateAsync(former, int.MaxValue, CancellationToken.None);

        var later = now.AddHours(2);
        Assert.Equal(AccessRequestStatus.Expired, (await store.GetAsync(former.Id, later, CancellationToken.None))!.Status);
        Assert.Equal(AccessRequestStatus.Pending, (await store.GetAsync(patient.Id, later, CancellationToken.None))!.Status);
        Assert.Equal(1, await store.CountPendingAsync("analyst", later, CancellationToken.None));
        Assert.Equal([patient.Id], (await store.ListAsync(AccessRequestStatus.Pending, later, CancellationToken.None)).Select(r => r.Id));
        Assert.False(await store.DecideAsync(former.Id, new ApprovalVote("alice", true, later, null), 1, TimeSpan.FromDays(1), later, CancellationToken.None));
        Assert.True(await store.DecideAsync(patient.Id, new ApprovalVote("alice", true, later, null), 1, TimeSpan.FromDays(1), later, CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Approved, (await store.GetAsync(patient.Id, later, CancellationToken.None))!.Status);

        var unanswered = Request("analyst", now) with { PendingUntil = now.AddHours(3) };
        await store.CreateAsync(unanswered, int.MaxValue, CancellationToken.None);
        Assert.Equal(AccessRequestStatus.Expired, (await store.GetAsync(unanswered.Id, now.AddHours(3), CancellationToken.None))!.Status);
        Assert.Equal(0, await store.CountPendingAsync("analyst", now.AddHours(3), CancellationToken.None));
    }

    [Fact]
    public async Task A_request_is_decided_once()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var request = Request("analyst", now);
        await store.CreateAsync(request, int.MaxValue, CancellationToken.None);
        Assert.True(await store.DecideAsync(request.Id, new ApprovalVote("alice", false, now, "no"), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
        Assert.False(await store.DecideAsync(request.Id, new ApprovalVote("bob", true, now, null), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
        Assert.Equal(AccessRequestStatus.Denied, (await store.GetAsync(request.Id, now, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task A_pending_request_expires_and_can_no_longer_be_approved()
    {
        var store = await OpenAsync();
        var created = DateTimeOffset.UtcNow.AddHours(-2);
        var request = Request("analyst", created);
        await store.CreateAsync(request, int.MaxValue, CancellationToken.None);
        var now = DateTimeOffset.UtcNow;
        Assert.Equal(AccessRequestStatus.Expired, (await store.GetAsync(request.Id, now, CancellationToken.None))!.Status);
        Assert.False(await store.DecideAsync(request.Id, new ApprovalVote("alice", true, now, null), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
    }

    [Fact]
    public async Task Disabling_an_agent_is_seen_by_another_process_sharing_the_store()
    {
        var first = await OpenAsync();
        var second = await OpenAsync(again: true);
        Assert.False(await second.IsDisabledAsync("analyst", CancellationToken.None));
        await first.SetDisabledAsync("analyst", true, "alice", CancellationToken.None);
        Assert.True(await first.IsDisabledAsync("analyst", CancellationToken.None));
        await SeenSoonAsync(() => second.IsDisabledAsync("analyst", CancellationToken.None).AsTask(), "disabled");
        Assert.False(await second.IsDisabledAsync("ops-bot", CancellationToken.None));
        await second.SetDisabledAsync("analyst", false, "alice", CancellationToken.None);
        Assert.False(await second.IsDisabledAsync("analyst", CancellationToken.None));
        await SeenSoonAsync(async () => !await first.IsDisabledAsync("analyst", CancellationToken.None), "enabled again");
    }

    // The reads every call makes come back through the store's kept statements (where it keeps them): each must still see
    // every change committed since, by this handle or another process.
    [Fact]
    public async Task Reads_repeated_on_one_handle_see_every_change_made_since_by_another_process()
    {
        var reader = await OpenAsync();
        var writer = await OpenAsync(again: true);
        for (var round = 0; round < 3; round++)
        {
            await SeenSoonAsync(async () => !await reader.IsDisabledAsync("analyst", CancellationToken.None), "enabled");
            await writer.SetDisabledAsync("analyst", true, "alice", CancellationToken.None);
            await SeenSoonAsync(() => reader.IsDisabledAsync("analyst", CancellationToken.None).AsTask(), "disabled");
            await writer.SetDisabledAsync("analyst", false, "alice", CancellationToken.None);
        }

        var now = DateTimeOffset.UtcNow;
        Assert.Empty(await reader.ActiveGrantsAsync("analyst", now, CancellationToken.None));
        var request = Request("analyst", now);
        await writer.CreateAsync(request, int.MaxValue, CancellationToken.None);
        Assert.True(await writer.DecideAsync(request.Id, new ApprovalVote("alice", true, now, "ok"), 1, TimeSpan.FromDays(30), now, CancellationToken.None));
        await SeenSoonAsync(async () => (await reader.ActiveGrantsAsync("analyst", now, CancellationToken.None)).Count == 1, "approved");
        // Revoked as of a minute from now, and read before that: only the revocation itself ends the grant.
        Assert.True(await writer.RevokeAsync(request.Id, "alice", now.AddMinutes(1), CancellationToken.None));
        await SeenSoonAsync(async () => (await reader.ActiveGrantsAsync("analyst", now.AddSeconds(30), CancellationToken.None)).Count == 0, "revoked");
    }

    [Fact]
    public async Task Many_reads_at_once_each_get_their_own_answer()
    {
        var store = await OpenAsync();
        await store.SetDisabledAsync("agent-3", true, "alice", CancellationToken.None);
        var answers = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => Task.Run(() => store.IsDisabledAsync($"agent-{i % 5}", CancellationToken.None).AsTask())));
        Assert.Equal(Enumerable.Range(0, 40).Select(i => i % 5 == 3), answers);
        Assert.True(await store.IsDisabledAsync("agent-3", CancellationToken.None));
    }

    [Fact]
    public async Task A_read_that_fails_leaves_the_next_read_working()
    {
        var store = await OpenAsync();
        await store.SetDisabledAsync("analyst", true, "alice", CancellationToken.None);
        Assert.True(await store.IsDisabledAsync("analyst", CancellationToken.None));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await store.IsDisabledAsync("analyst", new CancellationToken(canceled: true)));
        Assert.True(await store.IsDisabledAsync("analyst", CancellationToken.None));
    }

    private static StatementApproval Statement(DateTimeOffset created, int required = 1) =>
        new(StatementApproval.NewId(), "ops-bot", "ops-bot", "dev", "shop", StatementApproval.Hash("delete from payments where id = $1"), StatementApproval.Hash("[\"5\"]"),
            "delete from payments where id = $1", "[\"5\"]", "delete: public.payments(delete)", "guard.payments", "Payments are changed by people", required,
            StatementApprovalStatus.Pending, created, created + TimeSpan.FromHours(1));

    [Fact]
    public async Task A_statement_request_is_found_only_for_calls_made_on_behalf_of_the_same_person()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var forAlice = Statement(now) with { DelegatedBy = "alice" };
        var forNoOne = Statement(now) with { Id = StatementApproval.NewId() };
        await store.CreateStatementAsync(forAlice, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        await store.CreateStatementAsync(forNoOne, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        Task<StatementApproval?> Find(string? delegatedBy) =>
            store.FindLiveAsync("ops-bot", delegatedBy, "shop", forAlice.StatementHash, forAlice.ParametersHash, now - TimeSpan.FromHours(1), now, CancellationToken.None).AsTask();

        Assert.Equal(forAlice.Id, (await Find("alice"))?.Id);
        Assert.Equal(forNoOne.Id, (await Find(null))?.Id);
        Assert.Null(await Find("bob"));
    }

    [Fact]
    public async Task A_statement_request_expires_undecided_and_an_approval_lapses_unused()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var stale = Statement(now);
        await store.CreateStatementAsync(stale, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        var later = now + TimeSpan.FromHours(2);
        Assert.Equal(StatementApprovalStatus.Expired, (await store.GetStatementAsync(stale.Id, later, CancellationToken.None))!.Status);
        Assert.Null(await store.FindLiveAsync("ops-bot", null, "shop", stale.StatementHash, stale.ParametersHash, later - TimeSpan.FromHours(1), later, CancellationToken.None));
        Assert.Null(await store.VoteAsync(stale.Id, new ApprovalVote("alice", true, later, null), 1, TimeSpan.FromMinutes(15), later, CancellationToken.None));

        // Filed once the stale one has expired.
        var fresh = Statement(later) with { Id = StatementApproval.NewId() };
        Assert.True((await store.CreateStatementAsync(fresh, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None)).Filed(int.MaxValue));
        Assert.Equal(StatementApprovalStatus.Approved, (await store.VoteAsync(fresh.Id, new ApprovalVote("alice", true, later, "ok"), 1, TimeSpan.FromMinutes(15), later, CancellationToken.None))!.Status);
        Assert.False(await store.ClaimAsync(fresh.Id, later + TimeSpan.FromMinutes(16), CancellationToken.None));
        Assert.True(await store.ClaimAsync(fresh.Id, later + TimeSpan.FromMinutes(1), CancellationToken.None));
        Assert.False(await store.ClaimAsync(fresh.Id, later + TimeSpan.FromMinutes(2), CancellationToken.None));
    }

    [Fact]
    public async Task A_kept_result_is_handed_over_exactly_once_and_not_after_it_expires()
    {
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var request = Statement(now);
        await store.CreateStatementAsync(request, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        await store.FinishRunAsync(request.Id, "{\"kept\":1}", now + TimeSpan.FromHours(1), now, CancellationToken.None);
        Assert.Equal("{\"kept\":1}", await store.TakeResultAsync(request.Id, now, CancellationToken.None));
        Assert.Null(await store.TakeResultAsync(request.Id, now, CancellationToken.None));

        await store.FinishRunAsync(request.Id, "{\"kept\":2}", now + TimeSpan.FromHours(1), now, CancellationToken.None);
        Assert.Null(await store.TakeResultAsync(request.Id, now + TimeSpan.FromHours(2), CancellationToken.None));
    }

    [Fact]
    public async Task The_approvals_a_request_needs_rise_with_the_policy_in_force_even_once_it_is_approved()
    {
        // Filed when one approval was enough: after a reload asking two, one approver alone approved it all the same.
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var request = Statement(now);
        await store.CreateStatementAsync(request, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        var first = await store.VoteAsync(request.Id, new ApprovalVote("alice", true, now, null), 2, TimeSpan.FromMinutes(15), now, CancellationToken.None);
        Assert.Equal((StatementApprovalStatus.Pending, 2), (first!.Status, first.Required));
        // Kept: a vote under a policy asking fewer again still needs the two.
        var second = await store.VoteAsync(request.Id, new ApprovalVote("bob", true, now, null), 1, TimeSpan.FromMinutes(15), now, CancellationToken.None);
        Assert.Equal(StatementApprovalStatus.Approved, second!.Status);

        // Approved under one, then the policy asks three: pending again for the rest, and not claimable meanwhile.
        var other = Statement(now) with { Id = StatementApproval.NewId(), StatementHash = StatementApproval.Hash("other") };
        await store.CreateStatementAsync(other, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        await store.VoteAsync(other.Id, new ApprovalVote("alice", true, now, null), 1, TimeSpan.FromMinutes(15), now, CancellationToken.None);
        var (raised, reopened) = await store.RequireAsync(other.Id, 3, now + TimeSpan.FromHours(2), now, CancellationToken.None);
        Assert.True(reopened);
        Assert.Equal((StatementApprovalStatus.Pending, 3, 1, now + TimeSpan.FromHours(2)), (raised!.Status, raised.Required, raised.Approvals, raised.ExpiresAt));
        Assert.Equal(StatementApprovalStatus.Pending, (await store.GetStatementAsync(other.Id, now, CancellationToken.None))!.Status);
        Assert.False(await store.ClaimAsync(other.Id, now, CancellationToken.None));

        // Asking no more than it has already changes nothing.
        var (same, notReopened) = await store.RequireAsync(request.Id, 2, now + TimeSpan.FromHours(2), now, CancellationToken.None);
        Assert.Equal((StatementApprovalStatus.Approved, false), (same!.Status, notReopened));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_kept_result_past_its_time_is_deleted_when_a_run_finishes_or_a_request_is_filed(bool byFiling)
    {
        // Never taken, it stayed in the row for good, values its caller saw unmasked included.
        var store = await OpenAsync();
        var now = DateTimeOffset.UtcNow;
        var first = Statement(now);
        var second = Statement(now) with { Id = StatementApproval.NewId(), StatementHash = StatementApproval.Hash("second") };
        await store.CreateStatementAsync(first, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        await store.CreateStatementAsync(second, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        await store.FinishRunAsync(first.Id, "{\"kept\":1}", now + TimeSpan.FromMinutes(15), now, CancellationToken.None);
        Assert.Equal(1, await store.CountKeptResultsAsync(CancellationToken.None));

        var later = now + TimeSpan.FromHours(1);
        if (byFiling)
        {
            var third = Statement(later) with { Id = StatementApproval.NewId(), StatementHash = StatementApproval.Hash("third") };
            await store.CreateStatementAsync(third, int.MaxValue, DateTimeOffset.UnixEpoch, CancellationToken.None);
        }
        else
        {
            await store.FinishRunAsync(second.Id, null, later + TimeSpan.FromMinutes(15), later, CancellationToken.None);
        }

        Assert.Equal(0, await store.CountKeptResultsAsync(CancellationToken.None));
    }
}
