using System.Diagnostics;

namespace Gatehouse.Load;

/// <summary>One measured run: N workers calling as fast as they can for a fixed time, every latency kept.</summary>
public sealed record LoadResult(string Target, int Concurrency, int Calls, int Errors, double Seconds, double P50Ms, double P99Ms)
{
    /// <summary>When the measured calls began (after the warm-up) and when the last one ended.</summary>
    public DateTimeOffset Started { get; init; }

    public DateTimeOffset Ended { get; init; }

    public double CallsPerSecond => Calls / Seconds;

    public static async Task<LoadResult> RunAsync(string target, int concurrency, TimeSpan duration, Func<int, Func<Task>> worker)
    {
        var calls = Enumerable.Range(0, concurrency).Select(worker).ToList();
        // Warm up: every worker once, not measured (connections, JIT, caches).
        await Task.WhenAll(calls.Select(call => call()));
        var latencies = new List<double>[concurrency];
        var errors = 0;
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async i =>
        {
            var mine = latencies[i] = new List<double>(4096);
            while (clock.Elapsed < duration)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await calls[i]();
                    mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new LoadResult(target, concurrency, all.Length, errors, seconds, Percentile(all, 0.50), Percentile(all, 0.99)) { Started = started, Ended = DateTimeOffset.UtcNow };
    }

    private static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}
