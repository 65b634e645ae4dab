using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Quotas;

namespace Gatehouse.Tests.Enforcement.Quotas;

public sealed class QuotaTrackerTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 9, 0, 0, TimeSpan.Zero);

    private static readonly AgentIdentity Analyst = new("analyst", [], "test", "sub-analyst", null, Now.AddHours(1));

    private static QuotaTracker Tracker(long? rows = null, long? bytes = null) =>
        new(new QuotaSettings(new QuotaLimits(null, null, rows, bytes, TimeSpan.FromHours(1)), new Dictionary<string, QuotaLimits>(), new Dictionary<string, QuotaLimits>()));

    [Fact]
    public void Calls_running_at_once_cannot_together_receive_more_rows_than_the_quota()
    {
        var tracker = Tracker(rows: 250);
        var (first, _) = tracker.Enter(Analyst, Now, rowsPerCall: 100);
        var (second, _) = tracker.Enter(Analyst, Now, rowsPerCall: 100);
        var (third, _) = tracker.Enter(Analyst, Now, rowsPerCall: 100);
        Assert.Equal([100, 100, 50], new[] { first!.RowAllowance, second!.RowAllowance, third!.RowAllowance });
        Assert.Equal("agent 'analyst''s rows quota allows 50 more in this window", third.RowAllowanceReason);

        // All of it is held: a fourth call is refused while they run, and told why.
        var (none, refusal) = tracker.Enter(Analyst, Now, rowsPerCall: 100);
        Assert.Null(none);
        Assert.Equal("quota.rows", refusal!.Rule);
        Assert.Contains("received 0 rows in this 1h window, and calls still running may receive 250 more rows (try again when they finish), its limit is 250", refusal.Reason);
    }

    [Fact]
    public void What_a_call_did_not_receive_is_free_again_when_it_ends()
    {
        var tracker = Tracker(rows: 100);
        var (first, _) = tracker.Enter(Analyst, Now, rowsPerCall: 100);
        first!.Consume(rows: 30, bytes: 0, Now);
        first.Dispose();

        var (second, _) = tracker.Enter(Analyst, Now, rowsPerCall: 100);
        Assert.Equal(70, second!.RowAllowance);

        // A call that failed received nothing: all it held is free again, and its rows are not counted.
        second.Dispose();
        var (third, _) = tracker.Enter(Analyst, Now, rowsPerCall: 100);
        Assert.Equal(70, third!.RowAllowance);
        third.Consume(rows: 70, bytes: 0, Now);
        third.Dispose();
        third.Consume(rows: 70, bytes: 0, Now);
        Assert.Equal("quota.rows", tracker.Enter(Analyst, Now, rowsPerCall: 100).Refusal!.Rule);

        // The next window starts afresh.
        Assert.Equal(100, tracker.Enter(Analyst, Now.AddHours(1), rowsPerCall: 100).Lease!.RowAllowance);
    }

    [Fact]
    public void Bytes_are_held_like_rows_and_no_quota_means_no_allowance()
    {
        var tracker = Tracker(bytes: 1000);
        var (first, _) = tracker.Enter(Analyst, Now, rowsPerCall: 100, bytesPerCall: 600);
        var (second, _) = tracker.Enter(Analyst, Now, rowsPerCall: 100, bytesPerCall: 600);
        Assert.Equal(600, first!.ByteAllowance);
        Assert.Equal(400, second!.ByteAllowance);
        Assert.Contains("bytes quota allows about 400 more", second.ByteAllowanceReason);
        Assert.Null(first.RowAllowance);

        var unlimited = Tracker().Enter(Analyst, Now, rowsPerCall: 100).Lease!;
        Assert.Null(unlimited.RowAllowance);
        Assert.Null(unlimited.ByteAllowance);
    }
}
