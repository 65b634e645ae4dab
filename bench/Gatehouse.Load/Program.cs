// The side-by-side load benchmark of issue 8: on one machine, against one PostgreSQL, the same point query through
// direct Npgsql (the floor), a no-op MCP tool (the transport floor), Gatehouse over stdio and HTTP (identity,
// classification, audit and masking on), and the reference @modelcontextprotocol/server-postgres over stdio.
// Run: dotnet run -c Release --project bench/Gatehouse.Load [-- --seconds 5 --warmup 3 --http 1,8,32,64 --stdio 1,8 --starts 5] ("none" skips a transport;
// --no-floors skips direct Npgsql and the no-op tool)
// Gatehouse is published first as it ships (ReadyToRun, like the Dockerfile); --binary PATH runs another build of it.
// Or, for where one call's time goes, stage by stage: dotnet run -c Release --project bench/Gatehouse.Load -- --profile
// Or the soak with faults (PostgreSQL stopped and restarted, the gateway killed with -9): ... -- --soak [--minutes 10 --agents 32]
// [--approvals: besides, one agent's inserts each wait for a human, whom the soak plays through the admin API]
// Any of them with --durability process_crash: the audit store's opt-in faster durability level; with --state postgres: the
// gateway's state in PostgreSQL (gateway.store, as several instances share it) instead of the SQLite file.
using System.Diagnostics;
using Gatehouse.Benchmarks;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Connectors.Postgres.Setup;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Authorization;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Load;
using Gatehouse.McpServer.Demo;
using Gatehouse.McpServer.Hosting;
using ModelContextProtocol.Client;
using Npgsql;

if (args is ["noop-stdio"])
{
    await NoopServer.RunStdioAsync();
    return;
}

// The HTTP transport floor, as the benchmark runs it (a child process: noop-http PORT --child), or on its own to drive with
// another load generator (wrk) or profile: noop-http PORT.
if (args is ["noop-http", var noopPort, .. var noopOptions])
{
    await NoopServer.RunHttpAsync(int.Parse(noopPort, System.Globalization.CultureInfo.InvariantCulture), child: noopOptions is ["--child"]);
    return;
}

var seconds = Option("--seconds", 5);
// Unmeasured calls before each measured run, the same for every target.
var warmUp = TimeSpan.FromSeconds(Option("--warmup", 3));
var httpLevels = Levels("--http", [1, 8, 32, 64]);
var stdioLevels = Levels("--stdio", [1, 8]);
// --no-floors measures Gatehouse (and the reference server) alone, for a quick before-and-after or a long run to profile.
var floors = !args.Contains("--no-floors");
const string Sql = "select id, status, total from orders where id = 42";

NpgsqlSettings.ApplySwitches();
var directory = Path.Combine(Path.GetTempPath(), "gatehouse-load-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(directory);
await using var server = await LocalPostgresServer.StartAsync(Path.Combine(directory, "postgres"), CancellationToken.None);
var password = await ShopDatabase.CreateAsync(server.AdminConnectionString, "shop", "gatehouse_gateway", CancellationToken.None, directGrants: false);
var (policyPath, tokens) = DemoFiles.Write(directory, server.Port, password, TimeSpan.FromHours(4));
File.AppendAllText(policyPath, "\n# The load benchmark reads 100,000 rows in one call.\n");
// --durability process_crash measures the opt-in audit durability (records survive the gateway, not a power cut).
var durability = Text("--durability") ?? "power_loss";
// --state postgres keeps the gateway's state, audit log included, in PostgreSQL as several instances share it: a database of
// its own on the same server, owned by a login role of its own. Otherwise the SQLite file beside the policy.
var stateStore = Text("--state") ?? "sqlite";
var stateSetting = stateStore switch
{
    "sqlite" => "state: gatehouse-state.db",
    "postgres" => $"store:\n    postgres: \"{await StateDatabaseAsync(server)}\"",
    _ => throw new ArgumentException($"--state {stateStore}: sqlite or postgres"),
};
var policyText = File.ReadAllText(policyPath).Replace(
    "gateway:\n  state: gatehouse-state.db",
    $"gateway:\n  {stateSetting}\n  limits: {{ max_rows: 100000, max_result_bytes: 67108864 }}\n  audit: {{ durability: {durability} }}",
    StringComparison.Ordinal);
var shopAdmin = new NpgsqlConnectionStringBuilder(server.AdminConnectionString) { Database = "shop" }.ConnectionString;
// --soak --approvals: one agent's inserts wait for a human, whom the soak plays through the admin API.
var soakApprovals = args.Contains("--soak") && args.Contains("--approvals");
if (soakApprovals)
{
    await SoakApprovals.CreateTableAsync(shopAdmin);
}

File.WriteAllText(policyPath, soakApprovals ? SoakApprovals.Policy(policyText) : policyText);
var policy = PolicyLoader.LoadFile(policyPath);
await SetUpMaskingAsync(server.AdminConnectionString, policy);
if (args.Contains("--profile"))
{
    await StageProfile.RunAsync(policy, tokens["analyst"], Sql, Option("--calls", 500));
    return;
}

// Gatehouse as it ships: published ReadyToRun, as the Dockerfile does. --binary PATH runs another build instead.
var binary = Text("--binary")
    ?? await GatewayProcess.PublishAsync(GatewayProcess.RepositoryRoot(), Path.Combine(directory, "published"));
if (args.Contains("--soak"))
{
    var approvals = soakApprovals ? (tokens["ops-bot"], File.ReadAllText(Path.Combine(directory, "tokens", DemoFiles.AdminName + ".token"))) : ((string, string)?)null;
    await Soak.RunAsync(server, policy, policyPath, tokens["analyst"], binary, TimeSpan.FromMinutes(Option("--minutes", 10)), Option("--agents", 32), approvals);
    return;
}

var results = new List<LoadResult>();
var duration = TimeSpan.FromSeconds(seconds);
// PostgreSQL's postmaster, the parent of every backend: each run reads its processes' CPU time with the rest.
int postmaster;
await using (var admin = new NpgsqlConnection(server.AdminConnectionString))
{
    await admin.OpenAsync();
    postmaster = ProcessStat.Parent(admin.ProcessID) ?? throw new InvalidOperationException("PostgreSQL's postmaster was not found in /proc.");
}

Console.WriteLine($"PostgreSQL {server.Port}, {Environment.ProcessorCount} cores, {seconds} s per run after {warmUp.TotalSeconds:0} s of warm-up, audit durability {durability}, state in {stateStore}, query: {Sql}");

// 1. The floor: PostgreSQL itself, through Npgsql.
await using (var direct = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(shopAdmin) { Pooling = true, MaxPoolSize = 100 }.ConnectionString))
{
    foreach (var n in floors ? httpLevels : [])
    {
        results.Add(await LoadResult.RunAsync("direct Npgsql", n, duration, warmUp, _ => async () =>
        {
            await using var command = direct.CreateCommand(Sql);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
            }
        }, database: postmaster));
    }
}

// 2. The transport floor: a no-op MCP tool over HTTP and over stdio, each served by this program as a child, as the gateway
// is served apart from its clients (so its CPU time is the server's alone).
if (floors)
{
    using var noop = await NoopServer.StartChildAsync(Path.Combine(AppContext.BaseDirectory, "Gatehouse.Load"), GatewayProcess.FreePort());
    foreach (var n in httpLevels)
    {
        results.Add(await RunMcpAsync("no-op tool, HTTP", n, _ => McpClients.HttpAsync(noop.Url, null), client => client.CallToolAsync("noop", new Dictionary<string, object?> { ["sql"] = Sql }), () => ProcessStat.SpentSince([noop.Process.Id])));
    }
}

foreach (var n in floors ? stdioLevels : [])
{
    results.Add(await RunMcpAsync("no-op tool, stdio", n, _ => StdioClientFor(Path.Combine(AppContext.BaseDirectory, "Gatehouse.Load"), ["noop-stdio"], null), client => client.CallToolAsync("noop", new Dictionary<string, object?> { ["sql"] = Sql }), ChildrenCpu("noop-stdio")));
}

// 2b. What no enforced call can skip, each part alone with one caller, in this process: the gateway's executor as the gateway
// runs the statement (its login, over its connection, as the analyst's masking profile: one round trip of BEGIN READ ONLY,
// the call's settings, a cursor fetched to the row cap and ROLLBACK), and the audit store the gateway is configured with (the
// call's started record, stored before the statement runs, then its finished record, durable before the result leaves).
// The promises put them in sequence, so with the stdio transport floor they add up to the least an enforced stdio call can
// take on this machine. The store is the one the audit counts below are read from.
var state = (await GatewayState.OpenAsync(policy, CancellationToken.None)).Store;
if (floors)
{
    var caller = new AgentIdentity("analyst", [], "gatehouse-dev", "analyst", null, DateTimeOffset.MaxValue);
    var shop = policy.Connections["shop"];
    var (grants, unmask) = await new GrantResolver(policy, state).ResolveRightsAsync(caller, "shop", DateTimeOffset.UtcNow, CancellationToken.None);
    var role = DatabaseProfiles.Apply(shop) ? SessionRole.Profile(DatabaseProfiles.ForCall(shop, grants, unmask).Name) : null;
    await using var targets = new PostgresTargets(policy.Connections);
    var executor = new PostgresExecutor(targets);
    // At one caller for the least latency, and at 32 for the least CPU a call takes where the target asks for throughput
    // (pooled connections and shared commits make a call cheaper there).
    foreach (var n in httpLevels.Contains(32) ? [1, 32] : new[] { 1 })
    {
        results.Add(await LoadResult.RunAsync("executor alone", n, duration, warmUp, _ => async () => await executor.ExecuteAsync(
            new ExecutionRequest("shop", Sql, [], ReadOnly: true, Cursor: true, policy.Gateway.Limits.MaxRows, policy.Gateway.Limits.MaxResultBytes, policy.Gateway.Limits.StatementTimeout, caller, AuditRecord.NewId()) { Role = role },
            beforeCommit: null,
            CancellationToken.None), database: postmaster));
        results.Add(await LoadResult.RunAsync("audit store alone", n, duration, warmUp, _ => () => AuditCall.RecordAsync(state, tool: "load-benchmark"), database: postmaster));
    }
}

// 3. Gatehouse over HTTP, as a separate process: start-to-ready time and idle memory first. Start-up is timed over
// --starts starts (each process stopped before the next begins) and reported as their median, as one start on a shared
// machine says little; the last of them serves the load.
var starts = new List<double>();
for (var i = 1; i < Math.Max(1, Option("--starts", 5)); i++)
{
    var clock = Stopwatch.StartNew();
    using var started = await GatewayProcess.StartAsync(binary, policyPath, GatewayProcess.FreePort());
    starts.Add(clock.Elapsed.TotalMilliseconds);
    started.Kill(entireProcessTree: true);
    await started.WaitForExitAsync();
}

var port = GatewayProcess.FreePort();
var startClock = Stopwatch.StartNew();
using var gatehouse = await GatewayProcess.StartAsync(binary, policyPath, port);
starts.Add(startClock.Elapsed.TotalMilliseconds);
starts.Sort();
var endpoint = new Uri($"http://127.0.0.1:{port}/mcp");
await Task.Delay(TimeSpan.FromSeconds(2));
var idleRss = GatewayProcess.Memory(gatehouse.Id, "VmRSS");
var audited = new List<(LoadResult Result, int Records)>();
foreach (var n in httpLevels)
{
    var result = await RunMcpAsync("Gatehouse, HTTP", n, _ => McpClients.HttpAsync(endpoint, tokens["analyst"]), client => QueryAsync(client, Sql), () => ProcessStat.SpentSince([gatehouse.Id]));
    results.Add(result);
    audited.Add((result, await CountQueriesAsync(state, result)));
}

// A 100,000-row result under the cap: how much the process's peak memory grows (after a warm-up of small calls, so
// the figure is the result's and not a first call's code and pool).
long peakGrowth;
await using (var big = await McpClients.HttpAsync(endpoint, tokens["analyst"]))
{
    for (var i = 0; i < 20; i++)
    {
        await QueryAsync(big, Sql);
    }

    var peakBefore = GatewayProcess.Memory(gatehouse.Id, "VmHWM");
    var rows = await QueryAsync(big, "select g as n, md5(g::text) as h from generate_series(1, 100000) g");
    peakGrowth = GatewayProcess.Memory(gatehouse.Id, "VmHWM") - peakBefore;
    Console.WriteLine($"100,000-row call: {(rows.IsError == true ? "refused" : "answered")}, {rows.Content.OfType<ModelContextProtocol.Protocol.TextContentBlock>().Sum(t => t.Text.Length):N0} characters");
}

gatehouse.Kill(entireProcessTree: true);

// 4. Gatehouse and the reference server over stdio: one server process per agent, as MCP clients run them.
var reference = Path.Combine(GatewayProcess.RepositoryRoot(), "bench", "reference", "node_modules", "@modelcontextprotocol", "server-postgres", "dist", "index.js");
var adminBuilder = new NpgsqlConnectionStringBuilder(server.AdminConnectionString);
// The same local socket the admin uses (trust), as a libpq-style URL the reference server's pg driver reads.
var referenceUrl = $"postgresql:///shop?host={Uri.EscapeDataString(adminBuilder.Host!)}&port={server.Port}&user={adminBuilder.Username}";
if (!File.Exists(reference))
{
    Console.WriteLine($"reference server-postgres: not installed at {reference}; run npm ci --prefix bench/reference to compare with it");
}

foreach (var n in stdioLevels)
{
    var result = await RunMcpAsync("Gatehouse, stdio", n, _ => StdioClientFor(binary, ["serve", "--config", policyPath], tokens["analyst"]), client => QueryAsync(client, Sql), ChildrenCpu(policyPath));
    results.Add(result);
    audited.Add((result, await CountQueriesAsync(state, result)));
    if (File.Exists(reference))
    {
        results.Add(await RunMcpAsync("reference server-postgres, stdio", n, _ => StdioClientFor("node", [reference, referenceUrl], null), client => client.CallToolAsync("query", new Dictionary<string, object?> { ["sql"] = Sql }), ChildrenCpu(reference)));
    }
}

Console.WriteLine();
// CPU time per call (steadier than latency on a shared machine), where each process spent it: the server's processes, where
// they run apart from this client, with the part of it the JIT spent recompiling hot code; this client (and any target run in
// this process); and PostgreSQL's. "CPU-bound" is the most calls a second this machine's cores allow at their sum.
Console.WriteLine($"{"target",-36} {"agents",6} {"p50 ms",8} {"p99 ms",8} {"calls/s",9} {"errors",7} {"audited",12} {"server CPU ms/call",19} {"JIT",5} {"client",7} {"PostgreSQL",10} {"CPU-bound",10}");
foreach (var r in results)
{
    var records = audited.Where(a => a.Result == r).Select(a => $"{a.Records}/{r.Calls}").FirstOrDefault() ?? "-";
    var cpu = r.ServerCpuMsPerCall is { } ms ? ms.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) : "-";
    var jit = r.ServerCompilingShare is { } share ? share.ToString("0%", System.Globalization.CultureInfo.InvariantCulture) : "-";
    var database = r.DatabaseCpuMsPerCall is { } pg ? pg.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) : "-";
    Console.WriteLine($"{r.Target,-36} {r.Concurrency,6} {r.P50Ms,8:0.000} {r.P99Ms,8:0.000} {r.CallsPerSecond,9:0} {r.Errors,7} {records,12} {cpu,19} {jit,5} {r.ClientCpuMsPerCall,7:0.000} {database,10} {r.CpuBoundCallsPerSecond,10:0}");
}

// A server still recompiling its hot code is not at its steady state: its figures then say more about the warm-up.
foreach (var r in results.Where(r => r.ServerCompilingShare > 0.05))
{
    Console.WriteLine($"note: {r.Target} at {r.Concurrency} spent {r.ServerCompilingShare:0%} of its CPU in the JIT during the measured run; raise --warmup for steady-state figures");
}

Console.WriteLine();
var leastStdio = Find("no-op tool, stdio", 1)?.P50Ms + Find("executor alone", 1)?.P50Ms + Find("audit store alone", 1)?.P50Ms;
Ratio("least an enforced stdio call can take at 1 (no-op stdio + executor alone + audit store alone) / reference stdio p50 (no target)", leastStdio, Find("reference server-postgres, stdio", 1)?.P50Ms);
foreach (var n in stdioLevels)
{
    Ratio($"Gatehouse stdio p50 / reference stdio p50 at {n} (target <= 1)", Find("Gatehouse, stdio", n)?.P50Ms, Find("reference server-postgres, stdio", n)?.P50Ms);
    Ratio($"Gatehouse stdio server CPU per call / reference's at {n} (no target)", Find("Gatehouse, stdio", n)?.ServerCpuMsPerCall, Find("reference server-postgres, stdio", n)?.ServerCpuMsPerCall);
}

foreach (var n in httpLevels)
{
    var floor = Find("no-op tool, HTTP", n)?.P50Ms + Find("direct Npgsql", n)?.P50Ms;
    Ratio($"Gatehouse HTTP p50 / (no-op HTTP + direct) at {n} (target <= 1.25)", Find("Gatehouse, HTTP", n)?.P50Ms, floor);
    if (n == 1)
    {
        // As over stdio: what no enforced call can skip, in sequence, against the target's own baseline.
        var leastHttp = Find("no-op tool, HTTP", 1)?.P50Ms + Find("executor alone", 1)?.P50Ms + Find("audit store alone", 1)?.P50Ms;
        Ratio("least an enforced HTTP call can take at 1 (no-op HTTP + executor alone + audit store alone) / (no-op HTTP + direct) (no target)", leastHttp, floor);
    }
}

// Throughput at 32 is bound by the CPU all three processes spend per call on this machine's cores. The least an enforced
// HTTP call can spend: MCP over HTTP (the no-op tool: client and server), the statement as the gateway runs it (with
// PostgreSQL's part) and the call's two audit records, each measured alone at 32.
if (Find("Gatehouse, HTTP", 32) is { } enforced)
{
    Console.WriteLine($"CPU per Gatehouse HTTP call at 32: {enforced.MachineCpuMsPerCall:0.000} ms (client {enforced.ClientCpuMsPerCall:0.000} + gateway {enforced.ServerCpuMsPerCall:0.000} + PostgreSQL {enforced.DatabaseCpuMsPerCall:0.000}): at most {enforced.CpuBoundCallsPerSecond:0} calls/s on {Environment.ProcessorCount} cores; measured {enforced.CallsPerSecond:0}");
}

if (new[] { Find("no-op tool, HTTP", 32), Find("executor alone", 32), Find("audit store alone", 32) } is [{ } carried, { } executed, { } recorded])
{
    var least = carried.MachineCpuMsPerCall + executed.MachineCpuMsPerCall + recorded.MachineCpuMsPerCall;
    Console.WriteLine($"least CPU an enforced HTTP call can take at 32: {least:0.000} ms (no-op HTTP {carried.MachineCpuMsPerCall:0.000} + executor alone {executed.MachineCpuMsPerCall:0.000} + audit store alone {recorded.MachineCpuMsPerCall:0.000}): at most {Environment.ProcessorCount * 1000 / least:0} calls/s on {Environment.ProcessorCount} cores (target >= 5000)");
}

Console.WriteLine($"start to ready: median {starts[starts.Count / 2]:0} ms over {starts.Count} starts, {starts[0]:0}-{starts[^1]:0} ms (target <= 1000); idle memory: {idleRss / 1024.0:0.0} MB (target <= 120)");
Console.WriteLine($"100,000-row result: peak memory grew {peakGrowth / 1024.0:0.0} MB (target < 100)");
return;

LoadResult? Find(string target, int n) => results.FirstOrDefault(r => r.Target == target && r.Concurrency == n);

static void Ratio(string what, double? value, double? baseline) =>
    Console.WriteLine(value is { } v && baseline is { } b ? $"{what}: {v / b:0.00} ({v:0.000} ms vs {b:0.000} ms)" : $"{what}: not measured");

// A CPU reading of this process's children started with this in their command line (one server per stdio agent), taken
// of the same processes before and after.
static Func<Func<(TimeSpan? Cpu, TimeSpan Compiling)>> ChildrenCpu(string commandLine) => () => ProcessStat.SpentSince(ProcessStat.Children(Environment.ProcessId, commandLine));

async Task<LoadResult> RunMcpAsync(string target, int n, Func<int, Task<McpClient>> connect, Func<McpClient, ValueTask<ModelContextProtocol.Protocol.CallToolResult>> call, Func<Func<(TimeSpan? Cpu, TimeSpan Compiling)>>? serverCpu = null)
{
    var clients = await Task.WhenAll(Enumerable.Range(0, n).Select(connect));
    try
    {
        return await LoadResult.RunAsync(target, n, duration, warmUp, i => async () =>
        {
            var result = await call(clients[i]);
            if (result.IsError == true)
            {
                throw new InvalidOperationException("the call was refused");
            }
        }, serverCpu, postmaster);
    }
    finally
    {
        foreach (var client in clients)
        {
            await client.DisposeAsync();
        }
    }
}

static ValueTask<ModelContextProtocol.Protocol.CallToolResult> QueryAsync(McpClient client, string sql) =>
    client.CallToolAsync("query", new Dictionary<string, object?> { ["connection"] = "shop", ["sql"] = sql });

static async Task<McpClient> StdioClientFor(string command, string[] arguments, string? token)
{
    var options = new StdioClientTransportOptions { Command = command, Arguments = arguments, Name = "bench" };
    if (token is not null)
    {
        options.EnvironmentVariables = new Dictionary<string, string?> { ["GATEHOUSE_TOKEN"] = token };
    }

    return await McpClient.CreateAsync(new StdioClientTransport(options));
}

// The records of the measured calls: started after the warm-up, before the last call ended.
static async Task<int> CountQueriesAsync(SqlStateStore state, LoadResult run)
{
    var count = 0;
    await foreach (var record in state.ExportAsync(run.Started, run.Ended.AddMilliseconds(1), CancellationToken.None))
    {
        count += record.Tool == "query" && record.Decision == Verdict.Allowed ? 1 : 0;
    }

    return count;
}



// The state database and its owner, reached over the server's local socket (trust), as the gateway's connection string.
static async Task<string> StateDatabaseAsync(LocalPostgresServer server)
{
    await using var admin = new NpgsqlConnection(server.AdminConnectionString);
    await admin.OpenAsync();
    foreach (var sql in new[] { "CREATE ROLE gatehouse_state LOGIN", "CREATE DATABASE gatehouse_state OWNER gatehouse_state" })
    {
        await using var command = new NpgsqlCommand(sql, admin);
        await command.ExecuteNonQueryAsync();
    }

    return new NpgsqlConnectionStringBuilder(server.AdminConnectionString) { Database = "gatehouse_state", Username = "gatehouse_state", Pooling = true }.ConnectionString;
}

static async Task SetUpMaskingAsync(string adminConnectionString, GatewayPolicy policy)
{
    var shop = policy.Connections["shop"];
    await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(adminConnectionString) { Database = "shop" }.ConnectionString);
    await admin.OpenAsync();
    var report = await ProfileSetup.PlanAsync(admin, policy, shop, shop.Password.Read(), revokePublicExecute: false, CancellationToken.None);
    await ProfileSetup.ApplyAsync(admin, report, CancellationToken.None);
}

string? Text(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();

int Option(string name, int fallback) =>
    Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var value) ? value : fallback;

int[] Levels(string name, int[] fallback) =>
    Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length
        ? args[i + 1] == "none" ? [] : args[i + 1].Split(',').Select(int.Parse).ToArray()
        : fallback;
