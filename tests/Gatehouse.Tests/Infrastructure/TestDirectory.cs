using System.Collections.Concurrent;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>Fresh directories under the system temp dir, removed when the test run ends (PostgreSQL data dirs included).</summary>
public static class TestDirectory
{
    private static readonly ConcurrentBag<string> Created = [];

    static TestDirectory() => AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveAll();

    public static string Create(string prefix)
    {
        var path = Path.Combine(Path.GetTempPath(), $"gatehouse-test-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        Created.Add(path);
        return path;
    }

    /// <summary>Removes a directory now (for large ones, such as a stopped server's data), ignoring what cannot be removed.</summary>
    public static void Remove(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
            // A server still shutting down may hold a file; the OS temp cleaner gets the rest.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static void RemoveAll()
    {
        foreach (var path in Created.Where(Directory.Exists))
        {
            Remove(path);
        }
    }
}
