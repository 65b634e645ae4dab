using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using ModelContextProtocol.Client;
using Npgsql;

namespace Gatehouse.Load;

/// <summary>
/// The soak's approval loop (<c>--soak --approvals</c>): one agent sends inserts that each wait for a human, and an approver
/// approves them through the admin API, through the same faults as the load. Each insert adds its own number to a table
/// whose key refuses a second run, so the database itself says which statements committed, and that none ran twice.
/// </summary>
public sealed partial class SoakApprovals
{
    /// <summary>The policy the loop needs: the agent may insert into the loop's table, and each insert waits for a human, for a few seconds at a time.</summary>
    public static string Policy(string policyText) => policyText.Replace("tables: [public.orders]", "tables: [public.orders, public.soak_runs]", StringComparison.Ordinal) + """

        # The soak's approval loop: every insert by ops-bot waits for a human.
        guardrails:
          - id: soak-by-hand
            match:
              kinds: [insert]
              agents: [ops-bot]
            outcome: require_approval
            message: the soak approves these by hand
        approvals:
          wait: 5s
        """;

    /// <summary>The loop's table, in the shop database: one row per statement that committed; a second run breaks its key.</summary>
    public static async Task CreateTableAsync(string shopAdmin)
    {
        await using var connection = new NpgsqlConnection(shopAdmin);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("CREATE TABLE soak_runs (n int PRIMARY KEY)", connection);
        await command.ExecuteNonQueryAsync();
    }

    // How long the agent keeps calling one statement before it gives up on it and moves on to the next.
    private static readonly TimeSpan GiveUp = TimeSpan.FromSeconds(60);

    private readonly ConcurrentDictionary<string, int> _refusals = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<int, int> _returned = new();
    private readonly ConcurrentDictionary<int, int> _approvals = new();
    private int _statements;
    private int _abandoned;
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
                    client ??= await McpClients.HttpAsync(endpoint, token);
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
                        _approvals.AddOrUpdate(Number(request.GetProperty("sql").GetString() ?? ""), 1, (_, c) => c + 1);
                    }
                    else
                    {
                        Interlocked.Increment(ref _approverErrors);
                    }
                }
            }
            catch (Exception)
            {
                // The gateway is down, restarting or cut off mid-answer, or its store is: the next round tries again.
                Interlocked.Increment(ref _approverErrors);
            }

            await Task.Delay(250);
        }
    }

    /// <summary>Prints what the loop saw, and checks it against the rows the statements left in the database.</summary>
    public async Task ReportAsync(string shopAdmin)
    {
        var committed = new HashSet<int>();
        await using (var connection = new NpgsqlConnection(shopAdmin))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT n FROM soak_runs", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                committed.Add(reader.GetInt32(0));
            }
        }

        var returnedTwice = _returned.Count(r => r.Value > 1);
        var returnedNotCommitted = _returned.Keys.Count(n => !committed.Contains(n));
        var committedNotReturned = committed.Count(n => !_returned.ContainsKey(n));
        double[] waits;
        lock (_waits)
        {
            waits = [.. _waits.Order()];
        }

        Console.WriteLine($"approval loop: {_statements} statements, {_returned.Count} came back with their result ({returnedTwice} more than once), {_abandoned} given up on after {GiveUp.TotalSeconds:0} s or at the end");
        Console.WriteLine($"  approver: {_approvals.Values.Sum()} approvals answered as made through the admin API, {_approverErrors} failed rounds or answers; statements approved more than once (a new request after the first approval's run failed): {string.Join(", ", _approvals.Where(a => a.Value > 1).Select(a => $"{a.Key} ({a.Value}x)"))}");
        if (waits.Length > 0)
        {
            Console.WriteLine($"  from first call to result: median {waits[waits.Length / 2]:0.00} s, max {waits[^1]:0.00} s");
        }

        foreach (var (kind, count) in _refusals.OrderByDescending(r => r.Value))
        {
            Console.WriteLine($"  {count,7}  {kind}");
        }

        // A second run of a statement would fail on the table's key: it shows above as a refusal of the database's, and the
        // statement as given up on.
        Console.WriteLine($"  database: {committed.Count} statements committed; {returnedNotCommitted} results came back for a statement that did not commit; {committedNotReturned} committed without their result coming back");
    }

    private static string Statement(int n) => $"insert into soak_runs (n) values ({n})";

    // The statement's number, or 0 for a statement that is not the loop's.
    private static int Number(string sql) =>
        NumberPattern().Match(sql) is { Success: true } match ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;

    [GeneratedRegex(@"values \((\d+)\)$")]
    private static partial Regex NumberPattern();
}
