using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>
/// When the kept snapshot of switches and grants may serve a call, with the store's version and reads played by the test (the
/// PostgreSQL store's own tests run it against a real server).
/// </summary>
public sealed class StateSnapshotsTests
{
    private long _version = 1;
    private bool _pollsFail;
    private TaskCompletionSource? _holdLoad;
    private readonly TaskCompletionSource _loadBegan = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly SteppedClock _clock = new();

    private StateSnapshots Create(TimeSpan maxAge) => new(
        _ => _pollsFail ? throw new IOException("the store is away") : Task.FromResult(Interlocked.Read(ref _version)),
        async (from, _) =>
        {
            var version = Interlocked.Read(ref _version);
            if (_holdLoad is { } hold)
            {
                _loadBegan.TrySetResult();
                await hold.Task;
            }

            return new StateSnapshot(version, from, new HashSet<string> { $"disabled-at-{version}" }, new Dictionary<string, AccessRequest[]>());
        },
        _clock,
        pollInterval: TimeSpan.FromMilliseconds(20),
        maxAge: maxAge);

    [Fact]
    public async Task A_snapshot_serves_calls_until_a_poll_sees_the_version_change()
    {
        await using var snapshots = Create(TimeSpan.FromSeconds(30));
        Assert.Equal("disabled-at-1", (await snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None)).FindDisabled(["disabled-at-1"]));
        await snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal(1, snapshots.Loads);

        Interlocked.Exchange(ref _version, 2);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((await snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None)).Version != 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the poll never retired the old snapshot");
            await Task.Delay(10);
        }

        Assert.Equal(2, snapshots.Loads);
    }

    [Fact]
    public Task Once_polls_stop_answering_a_snapshot_is_not_used_past_its_age() => AssertReadAgainPastItsAgeAsync(meanwhile: () => { });

    [Fact]
    public Task A_wall_clock_stepped_back_does_not_keep_a_snapshot_young() => AssertReadAgainPastItsAgeAsync(meanwhile: () => _clock.Step = TimeSpan.FromHours(-1));

    // With polls failing, only reads observe the version: a snapshot past its age is read again, whatever happens meanwhile.
    private async Task AssertReadAgainPastItsAgeAsync(Action meanwhile)
    {
        var maxAge = TimeSpan.FromMilliseconds(300);
        await using var snapshots = Create(maxAge);
        _pollsFail = true;
        await snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None);
        meanwhile();
        await Task.Delay(maxAge * 2);
        await snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal(2, snapshots.Loads);
    }

    [Fact]
    public async Task A_call_does_not_wait_on_a_read_that_began_too_long_ago()
    {
        var maxAge = TimeSpan.FromMilliseconds(300);
        await using var snapshots = Create(maxAge);
        _holdLoad = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hanging = snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None).AsTask();
        await _loadBegan.Task;
        var held = _holdLoad;
        _holdLoad = null;
        await Task.Delay(maxAge * 2);

        // Were it to join the hanging read, it would wait as long as that read does.
        var fresh = await snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(hanging.IsCompleted);
        Assert.Equal(1, fresh.Version);
        held.SetResult();
        await hanging;
    }

    [Fact]
    public async Task A_read_under_way_when_this_handle_writes_is_not_kept()
    {
        await using var snapshots = Create(TimeSpan.FromSeconds(30));
        // Only reads observe the version here, so nothing but the write can retire the first one.
        _pollsFail = true;
        _holdLoad = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None).AsTask();
        await _loadBegan.Task;
        snapshots.Invalidate();
        Interlocked.Exchange(ref _version, 2);
        _holdLoad.SetResult();
        _holdLoad = null;
        Assert.Equal(1, (await first).Version);

        Assert.Equal(2, (await snapshots.GetAsync(DateTimeOffset.UtcNow, CancellationToken.None)).Version);
        Assert.Equal(2, snapshots.Loads);
    }

    // A gateway stopping while its state store is away: the poll's read in flight fails as the store's connections close,
    // after the poll was told to stop. That is the poll ending, not a failure for whoever disposes it.
    [Fact]
    public async Task Disposing_while_a_poll_read_fails_as_it_stops_completes_quietly()
    {
        var reading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var snapshots = new StateSnapshots(
            async token =>
            {
                reading.TrySetResult();
                await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
                throw new IOException("the store went away as the gateway stopped");
            },
            (_, _) => throw new InvalidOperationException("no call reads a snapshot here"),
            TimeProvider.System);
        await reading.Task;

        await snapshots.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Grants_are_those_unexpired_at_the_calls_own_time()
    {
        var now = DateTimeOffset.UtcNow;
        var request = new AccessRequest(
            AccessRequest.NewId(), "analyst", "analyst", "dev", "shop", [], AccessLevel.Read, "audit", TimeSpan.FromHours(1),
            AccessRequestStatus.Approved, now, now, "alice", null, now.AddHours(1));
        var snapshot = new StateSnapshot(1, now, new HashSet<string>(), new Dictionary<string, AccessRequest[]> { ["analyst"] = [request] });
        Assert.Single(snapshot.ActiveGrants("analyst", now.AddMinutes(59)));
        Assert.Empty(snapshot.ActiveGrants("analyst", now.AddMinutes(61)));
        Assert.Empty(snapshot.ActiveGrants("ops-bot", now));
    }
}

/// <summary>The system's clocks, with the wall clock stepped by <see cref="Step"/> (as NTP or a resumed VM may); the monotonic one untouched.</summary>
internal sealed class SteppedClock : TimeProvider
{
    public TimeSpan Step { get; set; }

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Step;
}
