using System.Diagnostics;
using Gatehouse.Benchmarks;

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
    /// The CPU time this process (the MCP clients, and whatever a target runs in this process) spent per measured call.
    /// </summary>
    public double ClientCpuMsPerCall { get; init; }

    /// <summary>PostgreSQL's CPU time per measured call (all its processes), where the run was given it.</summary>
    public double? DatabaseCpuMsPerCall { get; init; }

    /// <summary>All the CPU time one call takes on this machine: client, server and PostgreSQL.</summary>
    public double MachineCpuMsPerCall => ClientCpuMsPerCall + (ServerCpuMsPerCall ?? 0) + (DatabaseCpuMsPerCall ?? 0);

    /// <summary>The most calls a second this machine's cores could make at that CPU time per call, if nothing ever waited.</summary>
    public double CpuBoundCallsPerSecond => Environment.ProcessorCount * 1000 / MachineCpuMsPerCall;

    /// <summary>
    /// Runs the workers unmeasured for <paramref name="warmUp"/> (connections, caches, and the JIT's tiers: a .NET process
    /// runs unoptimized code for its first seconds of load), then measured for <paramref name="duration"/>. Every target gets
    /// the same warm-up.
    /// </summary>
    /// <param name="serverCpu">Starts a reading of the server processes' CPU time, and its JIT's part (just before the measured calls), whose result is read just after them.</param>
    /// <param name="database">PostgreSQL's postmaster, whose processes' CPU time is read with the server's.</param>
    public static async Task<LoadResult> RunAsync(string target, int concurrency, TimeSpan duration, TimeSpan warmUp, Func<int, Func<Task>> worker, Func<Func<(TimeSpan? Cpu, TimeSpan Compiling)>>? serverCpu = null, int? database = null)
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
        var databaseReading = database is { } postmaster ? ProcessStat.TreeSince(postmaster) : null;
        var client = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var errors = await CallAsync(calls, duration, latencies);
        var seconds = clock.Elapsed.TotalSeconds;
        client = Process.GetCurrentProcess().TotalProcessorTime - client;
        var (cpu, compiling) = reading?.Invoke() ?? default;
        var databaseCpu = databaseReading?.Invoke();
        var all = latencies.SelectMany(l => l).Order().ToArray();
        // Per call attempted: a failed call costs the server too.
        var attempted = Math.Max(1, all.Length + errors);
        return new LoadResult(target, concurrency, all.Length, errors, seconds, Percentile(all, 0.50), Percentile(all, 0.99))
        {
            Started = started,
            Ended = DateTimeOffset.UtcNow,
            ServerCpuMsPerCall = cpu is { } spent ? spent.TotalMilliseconds / attempted : null,
            ServerCompilingShare = cpu is { } total && total > TimeSpan.Zero ? compiling / total : null,
            ClientCpuMsPerCall = client.TotalMilliseconds / attempted,
            DatabaseCpuMsPerCall = databaseCpu is { } spentThere ? spentThere.TotalMilliseconds / attempted : null,
        };
    }

    // Every worker calls without pause until the time is up; latencies are kept when asked for. Returns the errors. Each
    // worker starts on the thread pool: a call that completes without yielding (a commit the caller makes itself) would
    // otherwise keep the next worker from starting until its own loop ended, and the run would have one caller, not N.
    private static async Task<int> CallAsync(List<Func<Task>> calls, TimeSpan duration, List<double>[]? latencies)
    {
        var errors = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, calls.Count).Select(i => Task.Run(async () =>
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
        })));
        return errors;
    }

    private static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}
