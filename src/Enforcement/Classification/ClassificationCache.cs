using System.Collections.Concurrent;

namespace Gatehouse.Enforcement.Classification;

/// <summary>
/// Plan facts by connection and normalized statement, valid only while the target's catalog version is the one they were
/// read under. A repeated statement then costs no EXPLAIN round trip.
/// </summary>
public sealed class ClassificationCache(int capacity = 10_000)
{
    private readonly ConcurrentDictionary<(string Connection, string Statement), (string Version, PlanFacts Plan)> _entries = new();

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
        if (_entries.Count >= capacity)
        {
            // Crude but bounded: a full cache starts over rather than growing without limit.
            _entries.Clear();
        }

        _entries[(connection, normalized)] = (version, plan);
    }
}

/// <summary>The current catalog version of a target database, or null when it is not known right now (then nothing is cached).</summary>
public interface ICatalogVersionSource
{
    string? Current(string connection);
}
