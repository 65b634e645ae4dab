using System.Collections.Concurrent;
using Gatehouse.Enforcement.Identity;

namespace Gatehouse.Enforcement.Quotas;

/// <summary>What a call holds while it runs: its place in the concurrency counts, and where its rows and bytes are counted.</summary>
public sealed class QuotaLease : IDisposable
{
    private readonly IReadOnlyList<QuotaTracker.Counter> _counters;
    private int _released;

    internal QuotaLease(IReadOnlyList<QuotaTracker.Counter> counters) => _counters = counters;

    public static QuotaLease Empty { get; } = new([]);

    /// <summary>Counts what the call returned against every quota that applies to it.</summary>
    public void Consume(long rows, long bytes, DateTimeOffset now)
    {
        foreach (var counter in _counters)
        {
            counter.Consume(rows, bytes, now);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            foreach (var counter in _counters)
            {
                counter.Leave();
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

    /// <summary>One quota's counts: call times in the last minute, calls running, and the current rows/bytes window.</summary>
    internal sealed class Counter(string who, QuotaLimits limits)
    {
        private readonly Lock _gate = new();
        private readonly Queue<DateTimeOffset> _recent = new();
        private int _running;
        private DateTimeOffset _windowStart = DateTimeOffset.MinValue;
        private long _rows;
        private long _bytes;

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
                if (limits.RowsPerWindow is { } rows && _rows >= rows)
                {
                    return new("quota.rows", $"{who} received {_rows} rows in this {Window()} window, its limit is {rows}; the window resets at {Time(_windowStart + limits.Window)}");
                }

                if (limits.BytesPerWindow is { } bytes && _bytes >= bytes)
                {
                    return new("quota.bytes", $"{who} received about {_bytes} bytes in this {Window()} window, its limit is {bytes}; the window resets at {Time(_windowStart + limits.Window)}");
                }

                _recent.Enqueue(now);
                _running++;
                return null;
            }
        }

        public void Leave()
        {
            lock (_gate)
            {
                _running--;
            }
        }

        public void Consume(long rows, long bytes, DateTimeOffset now)
        {
            lock (_gate)
            {
                RollWindow(now);
                _rows += Math.Max(rows, 0);
                _bytes += Math.Max(bytes, 0);
            }
        }

        private void RollWindow(DateTimeOffset now)
        {
            if (now >= _windowStart + limits.Window)
            {
                _windowStart = now;
                _rows = 0;
                _bytes = 0;
            }
        }

        private string Window() => Policy.Durations.Format(limits.Window);

        private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture);
    }
}
