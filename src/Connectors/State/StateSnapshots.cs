using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Connectors.State;

/// <summary>
/// What every call reads from a shared state store (the agents an admin has disabled, the approved requests not yet expired)
/// kept as one snapshot, so a call does not wait on the store for them.
/// <list type="bullet">
/// <item>The store bumps a version with every change to either, in the changing transaction; a snapshot carries the version it
/// was read at, in the same transaction.</item>
/// <item>A poll reads the version every <see cref="PollInterval"/>. A snapshot serves a call only while its version is the one last
/// seen, by a poll or a load that began within <see cref="MaxAge"/>: another instance's change is enforced here within that,
/// however late the poll runs or whether the store answers it. Ages are read off the monotonic clock, so a step of the wall
/// clock changes none of this; a call joins a load under way only if it began within the same bound.</item>
/// <item>This handle's own writes drop the snapshot before they return, so they are enforced here on the next call.</item>
/// <item>Past <see cref="MaxRows"/> disabled keys or active grants, that part is not kept and every call reads it.</item>
/// </list>
/// </summary>
internal sealed class StateSnapshots : IAsyncDisposable
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    public static readonly TimeSpan MaxAge = TimeSpan.FromMilliseconds(500);
    public const int MaxRows = 10_000;

    private readonly Func<CancellationToken, Task<long>> _readVersion;
    private readonly Func<DateTimeOffset, CancellationToken, Task<StateSnapshot>> _load;
    private readonly TimeProvider _time;
    private readonly TimeSpan _maxAge;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly Task _poll;

    private Observation? _seen;
    private StateSnapshot? _snapshot;
    private (Task<StateSnapshot> Task, long Began)? _loading;
    private long _epoch;

    /// <param name="readVersion">Reads the store's current version.</param>
    /// <param name="load">Reads the version and everything kept, in one transaction, with grants unexpired at the time given.</param>
    public StateSnapshots(
        Func<CancellationToken, Task<long>> readVersion,
        Func<DateTimeOffset, CancellationToken, Task<StateSnapshot>> load,
        TimeProvider time,
        TimeSpan? pollInterval = null,
        TimeSpan? maxAge = null)
    {
        _readVersion = readVersion;
        _load = load;
        _time = time;
        _maxAge = maxAge ?? MaxAge;
        _poll = Task.Run(() => PollAsync(pollInterval ?? PollInterval));
    }

    /// <summary>How many snapshots have been read from the store (for tests).</summary>
    public int Loads { get; private set; }

    /// <summary>
    /// A snapshot that may serve a call at <paramref name="now"/> (the call's own clock, against which grants expire), read
    /// afresh when the one kept may not.
    /// </summary>
    public async ValueTask<StateSnapshot> GetAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Task<StateSnapshot> loading;
        lock (_gate)
        {
            if (_snapshot is { } kept && Serves(kept, now))
            {
                return kept;
            }

            // Calls that find it stale together share one read, unless it began too long ago (it may be hanging) or before a
            // write of this handle.
            if (_loading is { } pending && !pending.Task.IsCompleted && _time.GetElapsedTime(pending.Began) < _maxAge)
            {
                loading = pending.Task;
            }
            else
            {
                var began = _time.GetTimestamp();
                loading = LoadAsync(now, _epoch, began);
                _loading = (loading, began);
            }
        }

        var snapshot = await loading.WaitAsync(cancellationToken).ConfigureAwait(false);
        // A snapshot read for an earlier clock may lack grants unexpired at an earlier time still: read this one's own.
        return snapshot.From <= now ? snapshot : await _load(now, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Drops the snapshot, and any read of one under way, after a change made through this handle.</summary>
    public void Invalidate()
    {
        lock (_gate)
        {
            _epoch++;
            _snapshot = null;
            _loading = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _poll.ConfigureAwait(false);
        _stop.Dispose();
    }

    // Called under the lock.
    private bool Serves(StateSnapshot snapshot, DateTimeOffset now) =>
        _seen is { } seen && seen.Version == snapshot.Version && _time.GetElapsedTime(seen.Began) < _maxAge && snapshot.From <= now;

    private async Task<StateSnapshot> LoadAsync(DateTimeOffset now, long epoch, long began)
    {
        await Task.Yield();
        var snapshot = await _load(now, CancellationToken.None).ConfigureAwait(false);
        lock (_gate)
        {
            Loads++;
            if (epoch == _epoch)
            {
                Observe(snapshot.Version, began);
                _snapshot = snapshot;
            }
        }

        return snapshot;
    }

    // Called under the lock. Versions only grow, so the observation that began last is the newest.
    private void Observe(long version, long began)
    {
        if (_seen is not { } seen || began > seen.Began)
        {
            _seen = new Observation(version, began);
        }
    }

    private async Task PollAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval, _time);
        var token = _stop.Token;
        try
        {
            do
            {
                var began = _time.GetTimestamp();
                long version;
                try
                {
                    version = await _readVersion(token).ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Nothing is seen: the snapshot ages out and calls read the store themselves until it answers again. A read
                    // that fails once the poll is stopping (the store's connections closing with the gateway) ends it at the tick.
                    continue;
                }

                lock (_gate)
                {
                    Observe(version, began);
                }
            }
            while (await timer.WaitForNextTickAsync(token).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
        }
    }

    // Began: a timestamp of the monotonic clock (TimeProvider.GetTimestamp).
    private readonly record struct Observation(long Version, long Began);
}

/// <summary>
/// The state every call reads, as of one version of the store: keys an admin has disabled, and approved requests unexpired at
/// <see cref="From"/>, by agent. A part over <see cref="StateSnapshots.MaxRows"/> rows is null: not kept.
/// </summary>
internal sealed record StateSnapshot(long Version, DateTimeOffset From, IReadOnlySet<string>? Disabled, IReadOnlyDictionary<string, AccessRequest[]>? Approved)
{
    /// <summary>Agents with an approved request the snapshot could not read: their grants are read per call, which says why.</summary>
    public IReadOnlySet<string> Unreadable { get; init; } = new HashSet<string>();

    /// <summary>Whether <paramref name="agent"/>'s grants come from this snapshot.</summary>
    public bool Keeps(string agent) => Approved is not null && !Unreadable.Contains(agent);

    /// <summary>The first of <paramref name="keys"/> that is disabled, or null.</summary>
    public string? FindDisabled(IReadOnlyList<string> keys) => keys.FirstOrDefault(Disabled!.Contains);

    /// <summary>The agent's grants from requests still unexpired at <paramref name="now"/>.</summary>
    public IReadOnlyList<Grant> ActiveGrants(string agent, DateTimeOffset now) =>
        Approved!.TryGetValue(agent, out var approved) ? [.. approved.Where(r => r.GrantExpiresAt > now).Select(r => r.ToGrant())] : [];
}
