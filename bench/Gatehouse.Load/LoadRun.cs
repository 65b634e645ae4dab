using System.Diagnostics;

namespace Gatehouse.Load;

/// <summary>One measured run: N workers calling as fast as they can for a fixed time, every latency kept.</summary>
public sealed record LoadResult(string Target, int Concurrency, int Calls, int Errors, double Seconds, double P50Ms, double P99Ms)
{
    /// <summary>When the measured calls began (after the warm-up) and when the last one ended.</summary>
    public DateTimeOffset Started { get; init; }

    public DateTimeOffset Ended { get; init; }

    public double CallsPerSecond => Calls / Seconds;

    /// <summary>
    /// The CPU time the server's processes spent per measured call, where they run apart from the client; null where they
    /// do not, or when one of them went away during the run.
    /// </summary>
    public double? ServerCpuMsPerCall { get; init; }

    /// <summary>The share of the server's CPU time its JIT spent recompiling hot code: above a few percent, it was not warm yet.</summary>
    public double? ServerCompilingShare { get; init; }

    /// <summary>
    /// Runs the workers unmeasured for <paramref name="warmUp"/> (connections, caches, and the JIT's tiers: a .NET process
    /// runs unoptimized code for its first seconds of load), then measured for <paramref name="duration"/>. Every target gets
    /// the same warm-up.
    /// </summary>
    /// <param name="serverCpu">Starts a reading of the server processes' CPU time, and its JIT's part (just before the measured calls), whose result is read just after them.</param>
    public static async Task<LoadResult> RunAsync(string target, int concurrency, TimeSpan duration, TimeSpan warmUp, Func<int, Func<Task>> worker, Func<Func<(TimeSpan? Cpu, TimeSpan Compiling)>>? serverCpu = null)
    {
        var calls = Enumerable.Range(0, concurrency).Select(worker).ToList();
        await Task.WhenAll(calls.Select(call => call()));
        await CallAsync(calls, warmUp, latencies: null);
        // Audit records carry their call's start to the millisecond: a pause keeps the last warm-up call's record out of the
        // measured window, which is counted from the millisecond it starts in.
        await Task.Delay(5);
        var latencies = new List<double>[concurrency];
        var started = DateTimeOffset.UtcNow;
        var reading = serverCpu?.Invoke();
        var clock = Stopwatch.StartNew();
        var errors = await CallAsync(calls, duration, latencies);
        var seconds = clock.Elapsed.TotalSeconds;
        var (cpu, compiling) = reading?.Invoke() ?? default;
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new LoadResult(target, concurrency, all.Length, errors, seconds, Percentile(all, 0.50), Percentile(all, 0.99))
        {
            Started = started,
            Ended = DateTimeOffset.UtcNow,
            // Per call attempted: a failed call costs the server too.
            ServerCpuMsPerCall = cpu is { } spent && all.Length + errors > 0 ? spent.TotalMilliseconds / (all.Length + errors) : null,
            ServerCompilingShare = cpu is { } total && total > TimeSpan.Zero ? compiling / total : null,
        };
    }

    // Every worker calls without pause until the time is up; latencies are kept when asked for. Returns the errors.
    private static async Task<int> CallAsync(List<Func<Task>> calls, TimeSpan duration, List<double>[]? latencies)
    {
        var errors = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, calls.Count).Select(async i =>
        {
            var mine = latencies is null ? null : latencies[i] = new List<double>(4096);
            while (clock.Elapsed < duration)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await calls[i]();
                    mine?.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        }));
        return errors;
    }

    private static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}
