using System.Diagnostics;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>The npm packages the tests run (tests/oidc, tests/conformance), installed from their lock files on first use.</summary>
public static class NodePackages
{
    private static readonly SemaphoreSlim Installing = new(1, 1);

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
