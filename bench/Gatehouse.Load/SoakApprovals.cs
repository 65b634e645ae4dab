using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using ModelContextProtocol.Client;

namespace Gatehouse.Load;

/// <summary>
/// The soak's approval loop (<c>--soak --approvals</c>): one agent sends updates that each wait for a human, and an approver
/// approves them through the admin API, through the same faults as the load. Each update is a statement of its own, so the
/// audit log tells how many times each ran: an approved statement must run once, and its result come back once.
/// </summary>
public sealed partial class SoakApprovals
{
    /// <summary>The policy the loop needs: the agent's updates wait for a human, for a few seconds at a time.</summary>
    public const string Policy = """

        # The soak's approval loop: every update by ops-bot waits for a human.
        guardrails:
          - id: soak-by-hand
            match:
              kinds: [update]
              agents: [ops-bot]
            outcome: require_approval
            message: the soak approves these by hand
        approvals:
          wait: 5s
        """;

    private const string Agent = "ops-bot";

    // How long the agent keeps calling one statement before it gives up on it and moves on to the next.
    private static readonly TimeSpan GiveUp = TimeSpan.FromSeconds(60);

    private readonly ConcurrentDictionary<string, int> _refusals = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<int, int> _returned = new();
    private readonly ConcurrentDictionary<int, int> _approvals = new();
    private int _statements;
    private int _abandoned;
    private int _approved;
    private int _approverErrors;
    private readonly List<double> _waits = [];

    public Task RunAsync(Uri endpoint, string agentToken, string adminToken, Stopwatch clock, TimeSpan duration) =>
        Task.WhenAll(AgentAsync(endpoint, agentToken, clock, duration), ApproverAsync(endpoint, adminToken, clock, duration));

    private async Task AgentAsync(Uri endpoint, string token, Stopwatch clock, TimeSpan duration)
    {
        McpClient? client = null;
        while (clock.Elapsed < duration)
        {
            var n = ++_statements;
            var arguments = new Dictionary<string, object?> { ["connection"] = "shop", ["sql"] = Statement(n) };
            var began = clock.Elapsed;
            // The same statement again until its result comes back: after approval.pending, or while PostgreSQL or the
            // gateway is down, the next identical call runs it once approved, or hands over the result kept for it.
            while (true)
            {
                if (clock.Elapsed - began > GiveUp || clock.Elapsed >= duration)
                {
                    Interlocked.Increment(ref _abandoned);
                    break;
                }

                try
                {
                    client ??= await Soak.ConnectAsync(endpoint, token);
                    var result = await client.CallToolAsync("query", arguments);
                    if (result.IsError != true)
                    {
                        _returned.AddOrUpdate(n, 1, (_, c) => c + 1);
                        lock (_waits)
                        {
                            _waits.Add((clock.Elapsed - began).TotalSeconds);
                        }

                        break;
                    }

                    var rule = Soak.RefusalRule(result);
                    _refusals.AddOrUpdate(rule, 1, (_, c) => c + 1);
                    if (rule != "approval.pending")
                    {
                        await Task.Delay(200);
                    }
                }
                catch (Exception e)
                {
                    _refusals.AddOrUpdate("transport: " + e.GetType().Name, 1, (_, c) => c + 1);
                    if (client is not null)
                    {
                        await client.DisposeAsync();
                        client = null;
                    }

                    await Task.Delay(200);
                }
            }
        }

        if (client is not null)
        {
            await client.DisposeAsync();
        }
    }

    private async Task ApproverAsync(Uri endpoint, string adminToken, Stopwatch clock, TimeSpan duration)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
        var api = new Uri(endpoint, "/admin/api/");
        while (clock.Elapsed < duration)
        {
            try
            {
                var listed = await http.GetFromJsonAsync<JsonElement>(new Uri(api, "requests"));
                foreach (var request in listed.GetProperty("statements").EnumerateArray().Where(r => r.GetProperty("status").GetString() == "pending"))
                {
                    using var approved = await http.PostAsync(new Uri(api, $"requests/{request.GetProperty("id").GetString()}/approve"), null);
                    if (approved.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref _approved);
                        if (NumberPattern().Match(request.GetProperty("sql").GetString() ?? "") is { Success: true } match)
                        {
                            _approvals.AddOrUpdate(int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), 1, (_, c) => c + 1);
                        }
                    }
                    else
                    {
                        Interlocked.Increment(ref _approverErrors);
                    }
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
            {
                // The gateway is down or restarting, or its store is: the next round tries again.
                Interlocked.Increment(ref _approverErrors);
            }

            await Task.Delay(250);
        }
    }

    /// <summary>Prints what the loop saw, and checks against the audit log that no approved statement ran twice.</summary>
    public async Task ReportAsync(SqlStateStore store, DateTimeOffset since)
    {
        var runs = new Dictionary<int, int>();
        await foreach (var record in store.ExportAsync(since, null, CancellationToken.None))
        {
            // A run is recorded as approval.approved; a result kept for a caller who had left, handed over later, as approval.result.
            if (record is { Tool: "query", Agent: Agent, Decision: Verdict.Allowed, Rule: "approval.approved", Sql: { } sql } && NumberPattern().Match(sql) is { Success: true } match)
            {
                var n = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                runs[n] = runs.GetValueOrDefault(n) + 1;
            }
        }

        var twice = runs.Count(r => r.Value > 1);
        var returnedTwice = _returned.Count(r => r.Value > 1);
        var returnedNotRun = _returned.Keys.Count(n => !runs.ContainsKey(n));
        var ranNotReturned = runs.Keys.Count(n => !_returned.ContainsKey(n));
        double[] waits;
        lock (_waits)
        {
            waits = [.. _waits.Order()];
        }

        Console.WriteLine($"approval loop: {_statements} statements, {_returned.Count} came back with their result ({returnedTwice} more than once), {_abandoned} given up on after {GiveUp.TotalSeconds:0} s or at the end");
        Console.WriteLine($"  approver: {_approved} approvals through the admin API, {_approverErrors} failed rounds or answers; statements approved more than once (a new request after the first approval's run failed): {string.Join(", ", _approvals.Where(a => a.Value > 1).Select(a => $"{a.Key} ({a.Value}x)"))}");
        if (waits.Length > 0)
        {
            Console.WriteLine($"  from first call to result: median {waits[waits.Length / 2]:0.00} s, max {waits[^1]:0.00} s");
        }

        foreach (var (kind, count) in _refusals.OrderByDescending(r => r.Value))
        {
            Console.WriteLine($"  {count,7}  {kind}");
        }

        Console.WriteLine($"  audit: {runs.Count} statements ran, {twice} of them more than once; {returnedNotRun} results came back without a run recorded; {ranNotReturned} ran without their result coming back");
    }

    private static string Statement(int n) => $"update orders set total = total where id = 42 and {n} > 0";

    [GeneratedRegex(@"and (\d+) > 0$")]
    private static partial Regex NumberPattern();
}
