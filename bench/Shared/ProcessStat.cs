using System.Globalization;

namespace Gatehouse.Benchmarks;

/// <summary>
/// What /proc says of a process: its CPU time so far, and its children. CPU time is steadier than latency on a shared
/// machine, so the benchmarks report it per call beside their timings. Null or empty where there is no /proc.
/// </summary>
public static class ProcessStat
{
    /// <summary>A process's user and system CPU time so far, or null once it has gone. Linux counts it in ticks of 10 ms (USER_HZ 100).</summary>
    public static TimeSpan? Cpu(int pid)
    {
        var fields = Fields(pid);
        return fields is null
            ? null
            : TimeSpan.FromMilliseconds((long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) * 10);
    }

    /// <summary>The running children of a process whose command line contains <paramref name="commandLine"/>.</summary>
    public static IReadOnlyList<int> Children(int parent, string commandLine)
    {
        var children = new List<int>();
        foreach (var directory in Directory.Exists("/proc") ? Directory.EnumerateDirectories("/proc") : [])
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && Fields(pid) is { } fields
                && fields[1] == parent.ToString(CultureInfo.InvariantCulture)
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

    // The fields after the command name, which is in parentheses and may hold spaces: [1] is the parent, [11] and [12] utime and stime.
    private static string[]? Fields(int pid) => Read($"/proc/{pid}/stat") is { } stat ? stat[(stat.LastIndexOf(')') + 2)..].Split(' ') : null;

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
