using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Quotas;

namespace Gatehouse.Tests.Enforcement.Quotas;

public sealed class QuotaTrackerTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 9, 0, 0, TimeSpan.Zero);

    private static readonly AgentIdentity Analyst = new("analyst", ["finance"], "test", "sub-analyst", null, Now.AddHours(1));

    private static QuotaTracker Tracker(long? rows = null, long? bytes = null, long? groupRows = null) =>
        new(new QuotaSettings(
            new QuotaLimits(null, null, rows, bytes, TimeSpan.FromHours(1)),
            new Dictionary<string, QuotaLimits>(),
            groupRows is null ? new Dictionary<string, QuotaLimits>() : new Dictionary<string, QuotaLimits> { ["finance"] = new(null, null, groupRows, null, TimeSpan.FromHours(1)) }));

    private static QuotaLease Enter(QuotaTracker tracker) => tracker.Enter(Analyst, Now).Lease!;

    [Fact]
    public void Reads_running_at_once_cannot_together_receive_more_rows_than_the_quota()
    {
        var tracker = Tracker(rows: 250);
        var caps = Enumerable.Range(0, 3).Select(_ => Enter(tracker).Hold(100, 1 << 20, Now).Caps).ToList();
        Assert.Equal([100, 100, 50], caps.Select(c => c.Rows));
        Assert.Null(caps[0].RowReason);
        Assert.Equal("the rows quota of agent 'analyst' allows 50 more in this window", caps[2].RowReason);

        // All of it is held: a fourth call is refused while they read, and told why.
        var (_, refusal) = tracker.Enter(Analyst, Now);
        Assert.Equal("quota.rows", refusal!.Rule);
        Assert.Contains("received 0 rows in this 1h window, and calls still running may receive 250 more rows (try again when they finish), its limit is 250", refusal.Reason);
    }

    [Fact]
    public void A_call_holds_nothing_until_it_reads_and_only_what_it_can_receive()
    {
        var tracker = Tracker(rows: 100, groupRows: 1000);
        var waiting = Enter(tracker);
        var small = Enter(tracker);

        // A read asking for 5 holds 5 of the agent's and of the group's quota, not all that is left of either.
        Assert.Equal(5, small.Hold(5, 1 << 20, Now).Caps.Rows);
        var next = Enter(tracker);
        var caps = next.Hold(1000, 1 << 20, Now).Caps;
        Assert.Equal(95, caps.Rows);
        Assert.Contains("agent 'analyst'", caps.RowReason);
        waiting.Dispose();
    }

    [Fact]
    public void What_a_read_did_not_receive_is_free_again_when_its_call_ends()
    {
        var tracker = Tracker(rows: 100);
        var first = Enter(tracker);
        first.Hold(100, 1 << 20, Now);
        first.Consume(rows: 30, bytes: 0, Now);
        first.Dispose();
        var probe = Enter(tracker);
        Assert.Equal(70, probe.Hold(100, 1 << 20, Now).Caps.Rows);
        probe.Dispose();

        // A call that failed received nothing: all it held is free again when it ends, and no rows are counted.
        var failed = Enter(tracker);
        failed.Hold(100, 1 << 20, Now);
        failed.Dispose();
        failed.Consume(rows: 70, bytes: 0, Now);
        var last = Enter(tracker);
        Assert.Equal(70, last.Hold(100, 1 << 20, Now).Caps.Rows);

        // A second read of one call replaces what its first held.
        Assert.Equal(70, last.Hold(100, 1 << 20, Now).Caps.Rows);
        last.Consume(rows: 70, bytes: 0, Now);
        last.Dispose();
        Assert.Equal("quota.rows", tracker.Enter(Analyst, Now).Refusal!.Rule);

        // The next window starts afresh.
        Assert.Equal(100, tracker.Enter(Analyst, Now.AddHours(1)).Lease!.Hold(100, 1 << 20, Now.AddHours(1)).Caps.Rows);
    }

    [Fact]
    public void A_write_rolled_back_to_wait_for_approval_gives_back_its_hold_and_holds_again_for_its_approved_run()
    {
        var tracker = Tracker(rows: 100);
        var waiting = Enter(tracker);
        waiting.Hold(100, 1 << 20, Now);
        Assert.Equal("quota.rows", tracker.Enter(Analyst, Now).Refusal!.Rule);

        // Rolled back: nothing was received, and other calls may receive it all while this one waits.
        waiting.Release();
        var other = Enter(tracker);
        Assert.Equal(100, other.Hold(100, 1 << 20, Now).Caps.Rows);
        other.Consume(rows: 40, bytes: 0, Now);
        other.Dispose();

        // Approved, it holds again: what is left.
        var approved = waiting.Hold(100, 1 << 20, Now).Caps;
        Assert.Equal(60, approved.Rows);
        Assert.Equal("the rows quota of agent 'analyst' allows 60 more in this window", approved.RowReason);
        waiting.Consume(rows: 60, bytes: 0, Now);
        waiting.Dispose();
        Assert.Equal("quota.rows", tracker.Enter(Analyst, Now).Refusal!.Rule);
    }

    [Fact]
    public void Bytes_are_held_like_rows_and_without_quotas_the_caps_stand()
    {
        var tracker = Tracker(bytes: 1000);
        Assert.Equal(600, Enter(tracker).Hold(100, 600, Now).Caps.Bytes);
        var second = Enter(tracker).Hold(100, 600, Now).Caps;
        Assert.Equal(400, second.Bytes);
        Assert.Equal("the bytes quota of agent 'analyst' allows about 400 more in this window", second.ByteReason);
        Assert.Equal(100, second.Rows);

        Assert.Equal(new QuotaCaps(100, null, 600, null), Enter(Tracker()).Hold(100, 600, Now).Caps);
    }
}
