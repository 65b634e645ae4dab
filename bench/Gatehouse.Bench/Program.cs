// Prints the figures issues 3 and 4 ask for that need PostgreSQL: the cost of a cold classification (one EXPLAIN
// round trip), masking on a real result, memory under the row cap, and strict masking's cost, against a throwaway
// PostgreSQL. The in-process parts (lexer, token validation, detectors, cached classification) are BenchmarkDotNet
// micro-benchmarks in bench/Gatehouse.Micro. Run: dotnet run -c Release --project bench/Gatehouse.Bench
using System.Diagnostics;
using Gatehouse.Benchmarks;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Demo;

NpgsqlSettings.ApplySwitches();
string[] statements =
[
    "select c.country, sum(o.total) from customers c join orders o on o.customer_id = c.id where o.status = $1 group by 1 order by 2 desc",
    "/* report */ with recent as (select * from orders where created_at > now() - interval '30 days') select count(*) from recent",
    "select id, email, E'it\\'s' as s, $$dollar; quoted$$ as d from customers where full_name like 'A%' -- trailing comment",
    "update orders set note = 'call before delivery' where id = $1",
];

var directory = Path.Combine(Path.GetTempPath(), "gatehouse-bench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(directory);
await using var server = await LocalPostgresServer.StartAsync(Path.Combine(directory, "pg"), CancellationToken.None);
var password = await ShopDatabase.CreateAsync(server.AdminConnectionString, "shop", "gatehouse_gateway", CancellationToken.None);
File.WriteAllText(Path.Combine(directory, "pw"), password);
var connections = new Dictionary<string, ConnectionConfig>
{
    ["shop"] = new("shop", $"Host=127.0.0.1;Port={server.Port};Database=shop;Username=gatehouse_gateway", new SecretSource(null, Path.Combine(directory, "pw"))),
};
await using var targets = new PostgresTargets(connections);
var analyzer = new PostgresAnalyzer(targets);
await analyzer.ExplainAsync("shop", statements[0], ["delivered"], null, CancellationToken.None);
Measure("cold classification (EXPLAIN round trip)", 0, () => analyzer.ExplainAsync("shop", statements[0], ["delivered"], null, CancellationToken.None).AsTask().GetAwaiter().GetResult(), 1);
var analyst = new AgentIdentity("analyst", [], "dev", "analyst", null, DateTimeOffset.MaxValue);

// One point read: PostgreSQL through plain Npgsql (the floor), then the executor's round trip (BEGIN READ ONLY, the
// session settings, a cursor fetched to the row cap, ROLLBACK), and the same without its parts, to see what each costs.
const string Point = "select id, status, total from orders where id = 42";
await using (var plain = Npgsql.NpgsqlDataSource.Create(new Npgsql.NpgsqlConnectionStringBuilder($"Host=127.0.0.1;Port={server.Port};Database=shop;Username=gatehouse_gateway") { Password = password }.ConnectionString))
{
    Measure("PostgreSQL floor (SELECT 1 round trip)", 0, () => RunBatch(plain, "select 1"), 1);
    Measure("point read, plain Npgsql", 0, () => RunBatch(plain, Point), 1);
    Measure("point read, in BEGIN READ ONLY ... ROLLBACK", 0, () => RunBatch(plain, "BEGIN READ ONLY", Point, "ROLLBACK"), 1);
    Measure("point read, as a cursor in BEGIN ... ROLLBACK", 0, () => RunBatch(plain, "BEGIN READ ONLY", "DECLARE c NO SCROLL CURSOR FOR " + Point, "FETCH FORWARD 1001 FROM c", "ROLLBACK"), 1);
}

var pointExecutor = new PostgresExecutor(targets);
ExecutionRequest Request(string sql) => new("shop", sql, [], true, true, 1000, 4 << 20, TimeSpan.FromSeconds(15), analyst, "bench");
Measure("point read, the executor (settings + cursor + caps; its own statements prepared)", 0, () => pointExecutor.ExecuteAsync(Request(Point), null, CancellationToken.None).AsTask().GetAwaiter().GetResult(), 1);

// What PostgreSQL itself spends on one executor call, the figure that caps throughput when the cores are shared: the CPU
// time of the backend serving the (one, reused) pooled connection over 5,000 calls, from /proc. Less noisy than latency.
const int CpuCalls = 5000;
var backend = Convert.ToInt32(pointExecutor.ExecuteAsync(Request("select pg_backend_pid()"), null, CancellationToken.None).AsTask().GetAwaiter().GetResult().Rows[0][0], System.Globalization.CultureInfo.InvariantCulture);
var backendCpu = ProcessStat.Since([backend]);
for (var i = 0; i < CpuCalls; i++)
{
    pointExecutor.ExecuteAsync(Request(Point), null, CancellationToken.None).AsTask().GetAwaiter().GetResult();
}

Console.WriteLine(backendCpu() is not { } spent
    ? "PostgreSQL CPU per executor point read: not measured (no /proc for the backend)"
    : $"PostgreSQL CPU per executor point read: {spent.TotalMicroseconds / CpuCalls:0.0} µs (backend {backend}, {CpuCalls:N0} calls)");

static void RunBatch(Npgsql.NpgsqlDataSource source, params string[] commands)
{
    using var connection = source.OpenConnection();
    using var batch = connection.CreateBatch();
    foreach (var text in commands)
    {
        batch.BatchCommands.Add(new Npgsql.NpgsqlBatchCommand(text));
    }

    using var reader = batch.ExecuteReader();
    do
    {
        while (reader.Read())
        {
        }
    }
    while (reader.NextResult());
}
// Masking cost on a realistic result: the same read with and without the Mask stage.
var executor = new PostgresExecutor(targets);
ExecutionRequest Read(string sql, int maxRows) => new("shop", sql, [], true, true, maxRows, 256 << 20, TimeSpan.FromSeconds(60), analyst, "bench");
const string Wide = "select c.*, o.* from customers c join orders o on o.customer_id = c.id";
var unmasked = Measure("query, 80 wide rows (no masking)", 0, () => executor.ExecuteAsync(Read(Wide, 1000), null, CancellationToken.None).AsTask().GetAwaiter().GetResult(), 1);
var masked = Measure("query, 80 wide rows + content detectors", 0, () =>
    Gatehouse.Enforcement.Masking.ResultMasker.Mask(executor.ExecuteAsync(Read(Wide, 1000), null, CancellationToken.None).AsTask().GetAwaiter().GetResult(), new Gatehouse.Enforcement.Masking.MaskingCounts()), 1);
// Every row holds raw emails, SSNs, cards and phones here, all found and replaced by the detectors: the backstop's worst
// case. The <= 10% target is for masking as a tagged connection gets it, by PostgreSQL (strict masking, below).
Console.WriteLine($"detector overhead on that query, every row's PII replaced: {(masked / unmasked - 1) * 100:0.0}% (no target; strict masking's is below)");

// A 100,000-row statement under the row cap, and the same rows read in full, with the memory each takes.
const string Big = "select g, md5(g::text) as hash, repeat('x', 40) as pad from generate_series(1, 100000) g";
foreach (var cap in new[] { 1000, 100_000 })
{
    GC.Collect();
    var workingSet = Environment.WorkingSet;
    var allocated = GC.GetTotalAllocatedBytes(precise: true);
    var result = executor.ExecuteAsync(Read(Big, cap), null, CancellationToken.None).AsTask().GetAwaiter().GetResult();
    Gatehouse.Enforcement.Masking.ResultMasker.Mask(result, new Gatehouse.Enforcement.Masking.MaskingCounts());
    Console.WriteLine($"100,000-row statement, row cap {cap,7:N0}: {result.Rows.Count,7:N0} rows returned, "
        + $"{(GC.GetTotalAllocatedBytes(precise: true) - allocated) / 1048576.0,6:0.0} MB allocated, working set +{(Environment.WorkingSet - workingSet) / 1048576.0:0.0} MB");
}

// Strict masking: the same reads as a masked profile (views with masking expressions) and as an unmasked one
// (the same views, columns passed through), both under SET LOCAL ROLE; and without any profile, as a reference.
// Once with redact/partial strategies only, once with SSNs as HMAC tokens.
var strictPassword = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
File.WriteAllText(Path.Combine(directory, "strict.pw"), strictPassword);
foreach (var (login, strategies) in new[] { ("gatehouse_partial", "{}"), ("gatehouse_token", "{ ssn: token }") })
{
    File.WriteAllText(Path.Combine(directory, login + ".yaml"), $$"""
        connections:
          shop:
            connection_string: "Host=127.0.0.1;Port={{server.Port}};Database=shop;Username={{login}}"
            password_file: strict.pw
            tags: { public.customers.email: email, public.customers.phone: phone, public.customers.ssn: ssn, public.customers.card_number: card }
            strategies: {{strategies}}
        issuers:
          - { issuer: gatehouse-dev, audience: gatehouse, dev_key_file: dev.pem }
        agents:
          analyst: { grants: [{ connection: shop, access: read, schemas: [public] }] }
          auditor: { unmask: [all], grants: [{ connection: shop, access: read, schemas: [public] }] }
        """);
    var strictPolicy = PolicyLoader.LoadFile(Path.Combine(directory, login + ".yaml"));
    var strictShop = strictPolicy.Connections["shop"];
    await using (var admin = new Npgsql.NpgsqlConnection(new Npgsql.NpgsqlConnectionStringBuilder(server.AdminConnectionString) { Database = "shop" }.ConnectionString))
    {
        await admin.OpenAsync();
        var report = await Gatehouse.Connectors.Postgres.Setup.ProfileSetup.PlanAsync(admin, strictPolicy, strictShop, strictPassword, false, CancellationToken.None);
        await Gatehouse.Connectors.Postgres.Setup.ProfileSetup.ApplyAsync(admin, report, CancellationToken.None);
    }

    await using var strictTargets = new PostgresTargets(strictPolicy.Connections);
    var strictExecutor = new PostgresExecutor(strictTargets);
    var maskedProfile = Gatehouse.Enforcement.Masking.DatabaseProfiles.For(strictShop, strictPolicy.Agents["analyst"].Grants, new HashSet<string>()).Name;
    var clearProfile = Gatehouse.Enforcement.Masking.DatabaseProfiles.For(strictShop, strictPolicy.Agents["auditor"].Grants, new HashSet<string> { "all" }).Name;
    foreach (var (label, sql) in new[]
    {
        ("customers, all columns", "select * from customers"),
        ("80 wide rows (customers x orders)", "select c.*, o.* from customers c join orders o on o.customer_id = c.id"),
    })
    {
        // Interleaved, so the shared machine's noise falls on all three alike.
        var (unprofiled, clear, maskedRun) = Interleave(
            () => executor.ExecuteAsync(Read(sql, 1000), null, CancellationToken.None).AsTask().GetAwaiter().GetResult(),
            () => strictExecutor.ExecuteAsync(Read(sql, 1000) with { Role = SessionRole.Profile(clearProfile) }, null, CancellationToken.None).AsTask().GetAwaiter().GetResult(),
            () => strictExecutor.ExecuteAsync(Read(sql, 1000) with { Role = SessionRole.Profile(maskedProfile) }, null, CancellationToken.None).AsTask().GetAwaiter().GetResult());
        Console.WriteLine($"strict masking, strategies {strategies}, {label}: p50 no profile {unprofiled:0} µs, unmasked profile {clear:0} µs, masked profile {maskedRun:0} µs;"
            + $" masked vs unmasked {(maskedRun / clear - 1) * 100:+0.0;-0.0}% (target <= 10%), profile vs none {(clear / unprofiled - 1) * 100:+0.0;-0.0}%");
    }
}

static double Measure(string name, int bytesPerIteration, Action body, int itemsPerIteration)
{
    for (var i = 0; i < 200; i++)
    {
        body();
    }

    var samples = new List<double>();
    var total = Stopwatch.StartNew();
    var iterations = 0;
    while (total.Elapsed < TimeSpan.FromSeconds(3))
    {
        var start = Stopwatch.GetTimestamp();
        body();
        samples.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        iterations++;
    }

    samples.Sort();
    var perItem = samples[samples.Count / 2] / itemsPerIteration;
    var throughput = bytesPerIteration == 0 ? "" : $", {bytesPerIteration * (double)iterations / total.Elapsed.TotalSeconds / 1_000_000:0.0} MB/s";
    var perSecond = itemsPerIteration * (double)iterations / total.Elapsed.TotalSeconds;
    Console.WriteLine($"{name,-58} p50 {perItem,9:0.000} µs per item, p99 {samples[(int)(samples.Count * 0.99)] / itemsPerIteration,9:0.0} µs, {perSecond,12:N0} items/s{throughput}");
    return perItem;
}

// p50 in µs of three bodies run in turn for 6 seconds.
static (double A, double B, double C) Interleave(Action a, Action b, Action c)
{
    Action[] bodies = [a, b, c];
    var samples = bodies.Select(_ => new List<double>()).ToArray();
    var total = Stopwatch.StartNew();
    for (var i = 0; total.Elapsed < TimeSpan.FromSeconds(6); i++)
    {
        var start = Stopwatch.GetTimestamp();
        bodies[i % 3]();
        if (i >= 300)
        {
            samples[i % 3].Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        }
    }

    var p50 = samples.Select(s => s.Order().ElementAt(s.Count / 2)).ToArray();
    return (p50[0], p50[1], p50[2]);
}
