using System.Collections.Concurrent;
using Gatehouse.Enforcement.Identity;

namespace Gatehouse.Enforcement.Quotas;

/// <summary>
/// What a call holds while it runs: its place in the concurrency counts and, while its statement runs, the rows and bytes
/// it may still receive, held for it so that statements running at once cannot together pass a quota.
/// </summary>
public sealed class QuotaLease : IDisposable
{
    private readonly Lock _gate = new();
    private readonly IReadOnlyList<QuotaTracker.Counter> _counters;
    private readonly QuotaTracker.Hold[] _holds;
    private bool _settled;
    private bool _released;

    internal QuotaLease(IReadOnlyList<QuotaTracker.Counter> counters)
    {
        _counters = counters;
        _holds = new QuotaTracker.Hold[counters.Count];
    }

    /// <summary>The lease of a call no quota applies to (shared: it holds and counts nothing).</summary>
    public static QuotaLease Empty { get; } = new([]);

    /// <summary>
    /// Holds, under every rows and bytes quota of the call, what a statement capped at <paramref name="rows"/> and
    /// <paramref name="bytes"/> may receive, or less where a quota has less left: the caps to read under, and why where a
    /// quota lowered them. Replaces what an earlier read of the call held. Refused when a quota has nothing left.
    /// </summary>
    public (QuotaCaps Caps, QuotaRefusal? Refusal) Hold(long rows, long bytes, DateTimeOffset now)
    {
        if (_counters.Count == 0)
        {
            return (new QuotaCaps(rows, null, bytes, null), null);
        }

        lock (_gate)
        {
            ReleaseHolds();
            var caps = new QuotaCaps(rows, null, bytes, null);
            for (var i = 0; i < _counters.Count; i++)
            {
                var (hold, refusal) = _counters[i].TryHold(caps.Rows, caps.Bytes, now);
                if (refusal is not null)
                {
                    ReleaseHolds();
                    return (caps, refusal);
                }

                _holds[i] = hold;
                if (hold.Rows is { } heldRows && heldRows < caps.Rows)
                {
                    caps = caps with { Rows = heldRows, RowReason = $"the rows quota of {_counters[i].Who} allows {heldRows} more in this window" };
                }

                if (hold.Bytes is { } heldBytes && heldBytes < caps.Bytes)
                {
                    caps = caps with { Bytes = heldBytes, ByteReason = $"the bytes quota of {_counters[i].Who} allows about {heldBytes} more in this window" };
                }
            }

            // Each quota holds only what the call can receive: the least any of them allows.
            for (var i = 0; i < _counters.Count; i++)
            {
                _holds[i] = _counters[i].Trim(_holds[i], caps.Rows, caps.Bytes);
            }

            return (caps, null);
        }
    }

    /// <summary>Gives back what the call holds, for a statement that ended without a result (a write rolled back).</summary>
    public void Release()
    {
        if (_counters.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            ReleaseHolds();
        }
    }

    /// <summary>Counts what the call returned against every quota that applies to it, in place of what was held for it.</summary>
    public void Consume(long rows, long bytes, DateTimeOffset now)
    {
        if (_counters.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            if (_settled)
            {
                return;
            }

            _settled = true;
            for (var i = 0; i < _counters.Count; i++)
            {
                _counters[i].Consume(rows, bytes, _holds[i], now);
                _holds[i] = QuotaTracker.Hold.None;
            }
        }
    }

    public void Dispose()
    {
        if (_counters.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            if (_released)
            {
                return;
            }

            _released = _settled = true;
            ReleaseHolds();
            foreach (var counter in _counters)
            {
                counter.Leave();
            }
        }
    }

    private void ReleaseHolds()
    {
        for (var i = 0; i < _counters.Count; i++)
        {
            _counters[i].Release(_holds[i]);
            _holds[i] = QuotaTracker.Hold.None;
        }
    }
}

/// <summary>The caps a read runs under, lowered by a quota where it has less left, and which quota (null where none did).</summary>
public sealed record QuotaCaps(long Rows, string? RowReason, long Bytes, string? ByteReason);

/// <summary>A quota refused the call: which rule, and a sentence saying which limit and when it resets.</summary>
public sealed record QuotaRefusal(string Rule, string Reason);

/// <summary>
/// Counts calls, concurrency, rows and bytes per agent (its own quota, or the default) and per group (one shared budget),
/// in this process. Thread-safe; a call enters before it runs and its lease leaves when it ends.
/// </summary>
public sealed class QuotaTracker(QuotaSettings settings)
{
    private readonly ConcurrentDictionary<string, Counter> _counters = new(StringComparer.Ordinal);

    public (QuotaLease? Lease, QuotaRefusal? Refusal) Enter(AgentIdentity identity, DateTimeOffset now)
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

        var entered = new List<Counter>();
        foreach (var counter in applicable)
        {
            if (counter.TryEnter(now) is { } refusal)
            {
                foreach (var done in entered)
                {
                    done.Leave();
                }

                return (null, refusal);
            }

            entered.Add(counter);
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

        public QuotaRefusal? TryEnter(DateTimeOffset now)
        {
            lock (_gate)
            {
                while (_recent.Count > 0 && _recent.Peek() <= now - TimeSpan.FromMinutes(1))
                {
                    _recent.Dequeue();
                }

                if (limits.CallsPerMinute is { } perMinute && _recent.Count >= perMinute)
                {
                    return new("quota.calls_per_minute", $"{who} made {_recent.Count} calls in the last minute, its limit is {perMinute}; the next call is allowed from {Time(_recent.Peek() + TimeSpan.FromMinutes(1))}");
                }

                if (limits.ConcurrentCalls is { } concurrent && _running >= concurrent)
                {
                    return new("quota.concurrent_calls", $"{who} already has {_running} calls running, its limit is {concurrent}; try again when one finishes");
                }

                RollWindow(now);
                if (Exhausted() is { } exhausted)
                {
                    return exhausted;
                }

                _recent.Enqueue(now);
                _running++;
                return null;
            }
        }

        /// <summary>Holds up to <paramref name="rows"/> and <paramref name="bytes"/> of what is left (null where there is no such limit).</summary>
        public (Hold Hold, QuotaRefusal? Refusal) TryHold(long rows, long bytes, DateTimeOffset now)
        {
            lock (_gate)
            {
                RollWindow(now);
                if (Exhausted() is { } exhausted)
                {
                    return (Hold.None, exhausted);
                }

                var hold = new Hold(
                    limits.RowsPerWindow is { } rowLimit ? Math.Min(rowLimit - _rows - _heldRows, rows) : null,
                    limits.BytesPerWindow is { } byteLimit ? Math.Min(byteLimit - _bytes - _heldBytes, bytes) : null);
                _heldRows += hold.Rows ?? 0;
                _heldBytes += hold.Bytes ?? 0;
                return (hold, null);
            }
        }

        /// <summary>Gives back what <paramref name="hold"/> has past <paramref name="rows"/> and <paramref name="bytes"/>; returns what is still held.</summary>
        public Hold Trim(Hold hold, long rows, long bytes)
        {
            var kept = new Hold(hold.Rows is { } r ? Math.Min(r, rows) : null, hold.Bytes is { } b ? Math.Min(b, bytes) : null);
            Release(new Hold(hold.Rows - kept.Rows, hold.Bytes - kept.Bytes));
            return kept;
        }

        public void Leave()
        {
            lock (_gate)
            {
                _running--;
            }
        }

        /// <summary>Counts what a call received in place of what it held, in one step: never both at once, nor neither.</summary>
        public void Consume(long rows, long bytes, Hold hold, DateTimeOffset now)
        {
            lock (_gate)
            {
                RollWindow(now);
                _rows += Math.Max(rows, 0);
                _bytes += Math.Max(bytes, 0);
                _heldRows -= hold.Rows ?? 0;
                _heldBytes -= hold.Bytes ?? 0;
            }
        }

        public void Release(Hold hold)
        {
            lock (_gate)
            {
                _heldRows -= hold.Rows ?? 0;
                _heldBytes -= hold.Bytes ?? 0;
            }
        }

        // A rows or bytes quota with nothing left in the current window, counting what running statements hold (a read's rows, a write's RETURNING rows).
        private QuotaRefusal? Exhausted()
        {
            if (limits.RowsPerWindow is { } rows && _rows + _heldRows >= rows)
            {
                return new("quota.rows", $"{who} received {_rows} rows in this {Window()} window{Held(_heldRows, "rows")}, its limit is {rows}; the window resets at {Time(_windowStart + limits.Window)}");
            }

            if (limits.BytesPerWindow is { } bytes && _bytes + _heldBytes >= bytes)
            {
                return new("quota.bytes", $"{who} received about {_bytes} bytes in this {Window()} window{Held(_heldBytes, "bytes")}, its limit is {bytes}; the window resets at {Time(_windowStart + limits.Window)}");
            }

            return null;
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
