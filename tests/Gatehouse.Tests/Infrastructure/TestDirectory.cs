namespace Gatehouse.Tests.Infrastructure;

/// <summary>Fresh directories under the system temp dir, traversable by the 'postgres' user when tests run as root.</summary>
public static class TestDirectory
{
    public static string Create(string prefix)
    {
        var path = Path.Combine(Path.GetTempPath(), $"gatehouse-test-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }
}
