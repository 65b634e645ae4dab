using System.Diagnostics;

namespace Gatehouse.Load;

/// <summary>`gatehouse serve --http` as a child process, and what the benchmarks read about it.</summary>
public static class GatewayProcess
{
    /// <summary>Starts the gateway on <paramref name="port"/> and returns once it answers HTTP.</summary>
    public static async Task<Process> StartAsync(string binary, string policyPath, int port)
    {
        var process = Process.Start(new ProcessStartInfo(binary, ["serve", "--config", policyPath, "--http", $"127.0.0.1:{port}"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        _ = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        using var http = new HttpClient();
        for (var i = 0; i < 1000; i++)
        {
            try
            {
                using var response = await http.GetAsync($"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
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

        throw new TimeoutException("gatehouse serve --http did not become ready");
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
