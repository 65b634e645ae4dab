using System.Collections.Concurrent;
using System.Diagnostics;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;
using ModelContextProtocol.Client;

namespace Gatehouse.Load;

/// <summary>
/// Where one call's time goes: the gateway in this process, its pipeline spans (a span per call, a child per stage)
/// collected by an ActivityListener over sequential calls, next to the latency the client sees, the server's time for the
/// whole HTTP request and the PostgreSQL round trips.
/// </summary>
public static class StageProfile
{
    public static async Task RunAsync(GatewayPolicy policy, string token, string sql, int calls)
    {
        var spans = new ConcurrentQueue<(string Name, double Ms)>();
        using var listener = new ActivityListener
        {
            // The gateway's own spans, the server's whole HTTP request, and Npgsql's span per round trip to PostgreSQL.
            ShouldListenTo = source => source.Name is GatewayTelemetry.Name or "Microsoft.AspNetCore" or "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = a => spans.Enqueue((a.OperationName, a.Duration.TotalMilliseconds)),
        };
        ActivitySource.AddActivityListener(listener);

        var state = await GatewayState.OpenAsync(policy, CancellationToken.None);
        using var stop = new CancellationTokenSource();
        var started = new TaskCompletionSource<Uri>();
        var host = Task.Run(() => HttpHost.RunAsync(policy, state, "127.0.0.1:0", url =>
        {
            started.SetResult(url);
            return Task.CompletedTask;
        }, stop.Token));
        var endpoint = await started.Task;
        await using (var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = endpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
        })))
        {
            var arguments = new Dictionary<string, object?> { ["connection"] = "shop", ["sql"] = sql };
            // Long enough for tiered compilation to finish (it waits for 100 ms without new tier-0 code): after a few dozen
            // calls most of the path still runs unoptimized, and its stages take several times what they take once warm.
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed < TimeSpan.FromSeconds(5))
            {
                await client.CallToolAsync("query", arguments);
            }

            spans.Clear();
            var seen = new List<double>();
            for (var i = 0; i < calls; i++)
            {
                var clock = Stopwatch.GetTimestamp();
                await client.CallToolAsync("query", arguments);
                seen.Add(Stopwatch.GetElapsedTime(clock).TotalMilliseconds);
            }

            // The mean per call shows where the time goes in all; on a shared machine a few stalls pull it up, so the median of
            // each span is beside it.
            Console.WriteLine($"{calls} sequential calls, in process:");
            Console.WriteLine($"  {"",-44} {"mean/call",9} {"p50/span",9}");
            Console.WriteLine($"  {"client-observed latency",-44} {seen.Average(),9:0.000} {Median(seen),9:0.000} ms");
            foreach (var group in spans.GroupBy(s => s.Name).OrderByDescending(g => g.Sum(s => s.Ms)))
            {
                Console.WriteLine($"  {group.Key,-44} {group.Sum(s => s.Ms) / calls,9:0.000} {Median(group.Select(s => s.Ms)),9:0.000} ms  ({(double)group.Count() / calls:0.##} per call)");
            }
        }

        await stop.CancelAsync();
        await host;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[sorted.Count / 2];
    }
}
