using System.Collections.Concurrent;

namespace Gatehouse.Enforcement.Classification;

/// <summary>
/// Plan facts by connection and normalized statement, valid only while the target's catalog version is the one they were
/// read under. A repeated statement then costs no EXPLAIN round trip. Bounded by entries and by the text they hold: an agent
/// sending 64 KB statements with a new parameter value each time would otherwise fill gigabytes.
/// </summary>
public sealed class ClassificationCache(int capacity = 10_000, long maxChars = 16 * 1024 * 1024)
{
    private readonly ConcurrentDictionary<(string Connection, string Statement), (string Version, PlanFacts Plan)> _entries = new();
    private long _chars;

    public bool TryGet(string connection, string normalized, string version, out PlanFacts plan)
    {
        if (_entries.TryGetValue((connection, normalized), out var entry) && entry.Version == version)
        {
            plan = entry.Plan;
            return true;
        }

        plan = null!;
        return false;
    }

    public void Set(string connection, string normalized, string version, PlanFacts plan)
    {
        // The statement's text and the plan's output expressions, which repeat its literals, are most of what an entry holds;
        // an entry replaced (its statement under a new catalog version) gives back what it held.
        var chars = Size(normalized, plan) - (_entries.TryGetValue((connection, normalized), out var replaced) ? Size(normalized, replaced.Plan) : 0);
        if (_entries.Count >= capacity || Interlocked.Add(ref _chars, chars) > maxChars)
        {
            // Crude but bounded: a full cache starts over rather than growing without limit.
            _entries.Clear();
            Interlocked.Exchange(ref _chars, chars);
        }

        _entries[(connection, normalized)] = (version, plan);
    }

    private static long Size(string normalized, PlanFacts plan) => normalized.Length + plan.Outputs.Sum(o => (long)o.Length);
}

/// <summary>The current catalog version of a target database, or null when it is not known right now (then nothing is cached).</summary>
public interface ICatalogVersionSource
{
    string? Current(string connection);
}
