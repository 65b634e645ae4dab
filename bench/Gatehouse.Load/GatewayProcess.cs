using System.Diagnostics;

namespace Gatehouse.Load;

/// <summary>`gatehouse serve --http` as a child process, and what the benchmarks read about it.</summary>
public static class GatewayProcess
{
    /// <summary>
    /// Publishes the gateway as it ships (the Dockerfile's publish: ReadyToRun, framework-dependent) into
    /// <paramref name="output"/> and returns its binary. Precompiled code is what start-up and the first seconds of load run on.
    /// </summary>
    public static async Task<string> PublishAsync(string repository, string output)
    {
        Console.WriteLine($"Publishing gatehouse (ReadyToRun) into {output} ...");
        var arguments = new[]
        {
            "publish", Path.Combine(repository, "src", "McpServer", "McpServer.csproj"), "-c", "Release",
            "-r", System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier, "--self-contained", "false",
            "-p:PublishReadyToRun=true", "-o", output,
        };
        using var publish = Process.Start(new ProcessStartInfo("dotnet", arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var log = publish.StandardOutput.ReadToEndAsync();
        var errors = publish.StandardError.ReadToEndAsync();
        await publish.WaitForExitAsync();
        if (publish.ExitCode != 0)
        {
            throw new InvalidOperationException($"dotnet publish failed:\n{await log}{await errors}");
        }

        return Path.Combine(output, "gatehouse");
    }

    /// <summary>
    /// The environment the container image serves HTTP with (the Dockerfile's <c>ENV NAME=VALUE</c> lines), so the gateway
    /// over HTTP is measured as it ships. Stdio servers are started by their clients, as on a workstation, without it.
    /// </summary>
    internal static readonly Lazy<IReadOnlyList<(string Name, string Value)>> ImageEnvironment = new(() =>
        File.ReadLines(Path.Combine(RepositoryRoot(), "Dockerfile"))
            .Where(line => line.StartsWith("ENV ", StringComparison.Ordinal))
            .Select(line => line[4..].Trim().Split('=', 2))
            .Select(pair => (pair[0], pair[1]))
            .ToList());

    /// <summary>The repository this benchmark was built from (where Mcp.sln is).</summary>
    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Mcp.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("run the benchmark from the repository");
    }

    /// <summary>Starts the gateway on <paramref name="port"/> and returns once /readyz says it is ready (state store and PostgreSQL answer).</summary>
    /// <remarks>Its log is added to gateway-PORT.log beside the policy (a restart on the same port appends), to look into whatever a run reports.</remarks>
    public static async Task<Process> StartAsync(string binary, string policyPath, int port)
    {
        var start = new ProcessStartInfo(binary, ["serve", "--config", policyPath, "--http", $"127.0.0.1:{port}"]) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var (name, value) in ImageEnvironment.Value)
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start)!;
        _ = KeepAsync(process.StandardError.BaseStream, Path.Combine(Path.GetDirectoryName(policyPath)!, $"gateway-{port}.log"));
        _ = process.StandardOutput.ReadToEndAsync();
        using var http = new HttpClient();
        for (var i = 0; i < 1000; i++)
        {
            try
            {
                using var response = await http.GetAsync($"http://127.0.0.1:{port}/readyz");
                if (response.IsSuccessStatusCode)
                {
                    return process;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(10);
        }

        throw new TimeoutException("gatehouse serve --http did not become ready within 10 s");
    }

    private static async Task KeepAsync(Stream log, string path)
    {
        await using var file = new FileStream(path, FileMode.Append);
        await log.CopyToAsync(file);
    }

    /// <summary>A memory figure of a process in KiB, from /proc (VmRSS now, VmHWM the peak).</summary>
    public static long Memory(int pid, string field) =>
        File.ReadLines($"/proc/{pid}/status").Where(l => l.StartsWith(field + ":", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture)).First();

    public static int FreePort()
    {
        using var socket = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        socket.Start();
        return ((System.Net.IPEndPoint)socket.LocalEndpoint).Port;
    }
}
