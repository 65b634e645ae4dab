using Gatehouse.Enforcement.Classification;

namespace Gatehouse.Tests.Enforcement.Classification;

/// <summary>The plan cache holds what it is given until its catalog version moves, and no more text than its bound.</summary>
public sealed class ClassificationCacheTests
{
    private static readonly PlanFacts Plan = new([], [], 1);

    [Fact]
    public void A_plan_is_served_only_under_the_catalog_version_it_was_read_under()
    {
        var cache = new ClassificationCache();
        cache.Set("shop", "select 1", "v1", Plan);

        Assert.True(cache.TryGet("shop", "select 1", "v1", out var plan));
        Assert.Same(Plan, plan);
        Assert.False(cache.TryGet("shop", "select 1", "v2", out _));
        Assert.False(cache.TryGet("other", "select 1", "v1", out _));
    }

    [Fact]
    public void Statements_holding_more_text_than_the_bound_start_the_cache_over_however_few_they_are()
    {
        // Ten 64 KB statements against a 256 KB bound: the count limit (10,000) is nowhere near.
        var cache = new ClassificationCache(maxChars: 256 * 1024);
        var statements = Enumerable.Range(0, 10).Select(i => $"select {i}, '{new string('x', 64 * 1024)}'").ToList();
        foreach (var statement in statements)
        {
            cache.Set("shop", statement, "v1", Plan with { Outputs = [statement] });
        }

        var held = statements.Count(s => cache.TryGet("shop", s, "v1", out _));
        Assert.InRange(held, 1, 2);
        Assert.True(cache.TryGet("shop", statements[^1], "v1", out _));
    }

    [Fact]
    public void A_statement_cached_again_under_a_new_catalog_version_is_counted_once()
    {
        // 100 KB against a 256 KB bound, set ten times as the catalog moves: counted each time, it started the cache over.
        var cache = new ClassificationCache(maxChars: 256 * 1024);
        var big = $"select '{new string('x', 100 * 1024)}'";
        cache.Set("shop", "select 1", "v1", Plan);
        for (var version = 0; version < 10; version++)
        {
            cache.Set("shop", big, $"v{version}", Plan);
        }

        Assert.True(cache.TryGet("shop", "select 1", "v1", out _));
    }
}
