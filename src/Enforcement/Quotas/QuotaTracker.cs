using System.Collections.Concurrent;
using Gatehouse.Enforcement.Identity;

namespace Gatehouse.Enforcement.Quotas;

/// <summary>
/// What a call holds while it runs: its place in the concurrency counts, and the rows and bytes it may still receive,
/// held for it so that calls running at once cannot together pass a quota.
/// </summary>
public sealed class QuotaLease : IDisposable
{
    private readonly IReadOnlyList<(QuotaTracker.Counter Counter, QuotaTracker.Hold Hold)> _held;
    private int _settled;
    private int _released;

    internal QuotaLease(IReadOnlyList<(QuotaTracker.Counter Counter, QuotaTracker.Hold Hold)> held)
    {
        _held = held;
        foreach (var (counter, hold) in held)
        {
            if (hold.Rows is { } rows && (RowAllowance is null || rows < RowAllowance))
            {
                (RowAllowance, RowAllowanceReason) = (rows, $"{counter.Who}'s rows quota allows {rows} more in this window");
            }

            if (hold.Bytes is { } bytes && (ByteAllowance is null || bytes < ByteAllowance))
            {
                (ByteAllowance, ByteAllowanceReason) = (bytes, $"{counter.Who}'s bytes quota allows about {bytes} more in this window");
            }
        }
    }

    public static QuotaLease Empty { get; } = new([]);

    /// <summary>The most rows the call may receive under its quotas; null when no rows quota applies.</summary>
    public long? RowAllowance { get; }

    /// <summary>Why a result stopped at <see cref="RowAllowance"/>: which quota, for the caller.</summary>
    public string? RowAllowanceReason { get; }

    /// <summary>The most bytes the call may receive under its quotas; null when no bytes quota applies.</summary>
    public long? ByteAllowance { get; }

    /// <summary>Why a result stopped at <see cref="ByteAllowance"/>.</summary>
    public string? ByteAllowanceReason { get; }

    /// <summary>Counts what the call returned against every quota that applies to it, in place of what was held for it.</summary>
    public void Consume(long rows, long bytes, DateTimeOffset now)
    {
        if (Interlocked.Exchange(ref _settled, 1) == 0)
        {
            foreach (var (counter, hold) in _held)
            {
                counter.Consume(rows, bytes, hold, now);
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            var settled = Interlocked.Exchange(ref _settled, 1) == 1;
            foreach (var (counter, hold) in _held)
            {
                counter.Leave(settled ? QuotaTracker.Hold.None : hold);
            }
        }
    }
}

/// <summary>A quota refused the call: which rule, and a sentence saying which limit and when it resets.</summary>
public sealed record QuotaRefusal(string Rule, string Reason);

/// <summary>
/// Counts calls, concurrency, rows and bytes per agent (its own quota, or the default) and per group (one shared budget),
/// in this process. Thread-safe; a call enters before it runs and its lease leaves when it ends.
/// </summary>
public sealed class QuotaTracker(QuotaSettings settings)
{
    private readonly ConcurrentDictionary<string, Counter> _counters = new(StringComparer.Ordinal);

    /// <param name="rowsPerCall">The most rows one call can receive (the row cap): what a rows quota holds for it at most.</param>
    /// <param name="bytesPerCall">The most bytes one call can receive (the byte cap): what a bytes quota holds for it at most.</param>
    public (QuotaLease? Lease, QuotaRefusal? Refusal) Enter(AgentIdentity identity, DateTimeOffset now, long rowsPerCall = long.MaxValue, long bytesPerCall = long.MaxValue)
    {
        if (!settings.Any)
        {
            return (QuotaLease.Empty, null);
        }

        var applicable = new List<Counter>();
        if ((settings.Agents.TryGetValue(identity.Agent, out var own) ? own : settings.Default) is { } agentLimits)
        {
            applicable.Add(_counters.GetOrAdd("agent:" + identity.Agent, _ => new Counter($"agent '{identity.Agent}'", agentLimits)));
        }

        foreach (var group in identity.Groups)
        {
            if (settings.Groups.TryGetValue(group, out var groupLimits))
            {
                applicable.Add(_counters.GetOrAdd("group:" + group, _ => new Counter($"group '{group}'", groupLimits)));
            }
        }

        var entered = new List<(Counter, Hold)>();
        foreach (var counter in applicable)
        {
            var (hold, refusal) = counter.TryEnter(now, rowsPerCall, bytesPerCall);
            if (refusal is not null)
            {
                foreach (var (done, held) in entered)
                {
                    done.Leave(held);
                }

                return (null, refusal);
            }

            entered.Add((counter, hold));
        }

        return (new QuotaLease(entered), null);
    }

    /// <summary>The rows and bytes a quota holds for a running call; null where it has no such limit.</summary>
    internal readonly record struct Hold(long? Rows, long? Bytes)
    {
        public static Hold None => default;
    }

    /// <summary>One quota's counts: call times in the last minute, calls running, the current rows/bytes window, and what running calls hold of it.</summary>
    internal sealed class Counter(string who, QuotaLimits limits)
    {
        private readonly Lock _gate = new();
        private readonly Queue<DateTimeOffset> _recent = new();
        private int _running;
        private DateTimeOffset _windowStart = DateTimeOffset.MinValue;
        private long _rows;
        private long _bytes;
        private long _heldRows;
        private long _heldBytes;

        public string Who => who;

        public (Hold Hold, QuotaRefusal? Refusal) TryEnter(DateTimeOffset now, long rowsPerCall, long bytesPerCall)
        {
            lock (_gate)
            {
                while (_recent.Count > 0 && _recent.Peek() <= now - TimeSpan.FromMinutes(1))
                {
                    _recent.Dequeue();
                }

                if (limits.CallsPerMinute is { } perMinute && _recent.Count >= perMinute)
                {
                    return (default, new("quota.calls_per_minute", $"{who} made {_recent.Count} calls in the last minute, its limit is {perMinute}; the next call is allowed from {Time(_recent.Peek() + TimeSpan.FromMinutes(1))}"));
                }

                if (limits.ConcurrentCalls is { } concurrent && _running >= concurrent)
                {
                    return (default, new("quota.concurrent_calls", $"{who} already has {_running} calls running, its limit is {concurrent}; try again when one finishes"));
                }

                RollWindow(now);
                if (limits.RowsPerWindow is { } rows && _rows + _heldRows >= rows)
                {
                    return (default, new("quota.rows", $"{who} received {_rows} rows in this {Window()} window{Held(_heldRows, "rows")}, its limit is {rows}; the window resets at {Time(_windowStart + limits.Window)}"));
                }

                if (limits.BytesPerWindow is { } bytes && _bytes + _heldBytes >= bytes)
                {
                    return (default, new("quota.bytes", $"{who} received about {_bytes} bytes in this {Window()} window{Held(_heldBytes, "bytes")}, its limit is {bytes}; the window resets at {Time(_windowStart + limits.Window)}"));
                }

                var hold = new Hold(
                    limits.RowsPerWindow is { } rowLimit ? Math.Min(rowLimit - _rows - _heldRows, rowsPerCall) : null,
                    limits.BytesPerWindow is { } byteLimit ? Math.Min(byteLimit - _bytes - _heldBytes, bytesPerCall) : null);
                _heldRows += hold.Rows ?? 0;
                _heldBytes += hold.Bytes ?? 0;
                _recent.Enqueue(now);
                _running++;
                return (hold, null);
            }
        }

        public void Leave(Hold hold)
        {
            lock (_gate)
            {
                _running--;
                Release(hold);
            }
        }

        public void Consume(long rows, long bytes, Hold hold, DateTimeOffset now)
        {
            lock (_gate)
            {
                RollWindow(now);
                _rows += Math.Max(rows, 0);
                _bytes += Math.Max(bytes, 0);
                Release(hold);
            }
        }

        private void Release(Hold hold)
        {
            _heldRows -= hold.Rows ?? 0;
            _heldBytes -= hold.Bytes ?? 0;
        }

        // What running calls hold is not reset with the window: they may still receive it.
        private void RollWindow(DateTimeOffset now)
        {
            if (now >= _windowStart + limits.Window)
            {
                _windowStart = now;
                _rows = 0;
                _bytes = 0;
            }
        }

        private static string Held(long held, string what) => held > 0 ? $", and calls still running may receive {held} more {what} (try again when they finish)" : "";

        private string Window() => Policy.Durations.Format(limits.Window);

        private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture);
    }
}
