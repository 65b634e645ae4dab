using System.Globalization;

namespace Gatehouse.Benchmarks;

/// <summary>
/// What /proc says of a process: its CPU time so far, and its children. CPU time is steadier than latency on a shared
/// machine, so the benchmarks report it per call beside their timings. Null or empty where there is no /proc.
/// </summary>
public static class ProcessStat
{
    /// <summary>A process's user and system CPU time so far, or null once it has gone. Linux counts it in ticks of 10 ms (USER_HZ 100).</summary>
    public static TimeSpan? Cpu(int pid) => Ticks($"/proc/{pid}/stat") is { } ticks ? TimeSpan.FromMilliseconds(ticks * 10) : null;

    /// <summary>The running children of a process whose command line contains <paramref name="commandLine"/>.</summary>
    public static IReadOnlyList<int> Children(int parent, string commandLine)
    {
        var children = new List<int>();
        foreach (var (pid, fields) in Processes())
        {
            if (fields[1] == parent.ToString(CultureInfo.InvariantCulture)
                && Read($"/proc/{pid}/cmdline")?.Replace('\0', ' ').Contains(commandLine, StringComparison.Ordinal) == true)
            {
                children.Add(pid);
            }
        }

        return children;
    }

    /// <summary>
    /// Starts a reading of these processes' CPU time: the function returned gives what they have spent since, or null when
    /// there were none or any of them has gone (its time would drop out of the sum). Good to a tick (10 ms) per process.
    /// </summary>
    public static Func<TimeSpan?> Since(IReadOnlyList<int> pids)
    {
        var before = Sum(pids);
        return () => before is { } start && Sum(pids) is { } now ? now - start : null;
    }

    /// <summary>The parent of a process, or null once it has gone.</summary>
    public static int? Parent(int pid) => Fields(pid) is { } fields ? int.Parse(fields[1], CultureInfo.InvariantCulture) : null;

    /// <summary>
    /// Starts a reading of the CPU time of a process and all its descendants, those that exit meanwhile included (their time
    /// passes to whoever reaps them): what a server that forks a process per connection spends, as PostgreSQL does. The
    /// function returned gives what they have spent since, or null once the root has gone.
    /// </summary>
    public static Func<TimeSpan?> TreeSince(int root)
    {
        var before = Tree(root);
        return () => before is { } start && Tree(root) is { } now ? now - start : null;
    }

    // A process's and its living descendants' own time and their reaped children's, which together only grow.
    private static TimeSpan? Tree(int root)
    {
        var children = new Dictionary<int, List<int>>();
        var times = new Dictionary<int, long>();
        foreach (var (pid, fields) in Processes())
        {
            var parent = int.Parse(fields[1], CultureInfo.InvariantCulture);
            (children.TryGetValue(parent, out var list) ? list : children[parent] = []).Add(pid);
            times[pid] = fields[11..15].Sum(f => long.Parse(f, CultureInfo.InvariantCulture));
        }

        if (!times.ContainsKey(root))
        {
            return null;
        }

        var ticks = 0L;
        var pending = new Stack<int>([root]);
        while (pending.TryPop(out var pid))
        {
            ticks += times.GetValueOrDefault(pid);
            foreach (var child in children.GetValueOrDefault(pid) ?? [])
            {
                pending.Push(child);
            }
        }

        return TimeSpan.FromMilliseconds(ticks * 10);
    }

    /// <summary>
    /// Like <see cref="Since"/>, and besides the part spent in .NET's tiered-compilation worker: a process still recompiling
    /// its hot code is not at its steady state yet. A worker that started and stopped again in between is not counted.
    /// </summary>
    public static Func<(TimeSpan? Cpu, TimeSpan Compiling)> SpentSince(IReadOnlyList<int> pids)
    {
        var cpu = Since(pids);
        var before = CompilerThreads(pids);
        return () =>
        {
            var spent = cpu();
            var ticks = CompilerThreads(pids).Sum(t => t.Value - before.GetValueOrDefault(t.Key));
            return (spent, TimeSpan.FromMilliseconds(ticks * 10));
        };
    }

    // .NET names the worker ".NET Tiered Compilation Worker"; the kernel keeps the first 15 characters of a thread's name.
    private static Dictionary<string, long> CompilerThreads(IReadOnlyList<int> pids)
    {
        var threads = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var pid in pids)
        {
            var tasks = $"/proc/{pid}/task";
            foreach (var task in Directory.Exists(tasks) ? Directory.EnumerateDirectories(tasks) : [])
            {
                if (Read(Path.Combine(task, "comm"))?.StartsWith(".NET Tiered Com", StringComparison.Ordinal) == true && Ticks(Path.Combine(task, "stat")) is { } ticks)
                {
                    threads[task] = ticks;
                }
            }
        }

        return threads;
    }

    private static TimeSpan? Sum(IReadOnlyList<int> pids)
    {
        var sum = TimeSpan.Zero;
        foreach (var pid in pids)
        {
            if (Cpu(pid) is not { } cpu)
            {
                return null;
            }

            sum += cpu;
        }

        return pids.Count == 0 ? null : sum;
    }

    // Every process running, with its stat fields.
    private static IEnumerable<(int Pid, string[] Fields)> Processes()
    {
        foreach (var directory in Directory.Exists("/proc") ? Directory.EnumerateDirectories("/proc") : [])
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && Fields(pid) is { } fields)
            {
                yield return (pid, fields);
            }
        }
    }

    // The fields after the command name, which is in parentheses and may hold spaces: [1] is the parent, [11] and [12] utime and
    // stime, [13] and [14] those of the children it has reaped.
    private static string[]? Fields(int pid) => Fields($"/proc/{pid}/stat");

    private static string[]? Fields(string statPath) => Read(statPath) is { } stat ? stat[(stat.LastIndexOf(')') + 2)..].Split(' ') : null;

    // User and system time of a process or thread, in ticks.
    private static long? Ticks(string statPath) =>
        Fields(statPath) is { } fields ? long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture) : null;

    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
