using BenchmarkDotNet.Attributes;
using Gatehouse.Benchmarks;
using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Authorization;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Masking;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Tools;

namespace Gatehouse.Micro;

/// <summary>Reading a submitted statement: the lexer, the splitter and the statement kind.</summary>
[MemoryDiagnoser]
public class Lexer
{
    [Params(
        "select id, status, total from orders where id = 42",
        "select c.country, sum(o.total) from customers c join orders o on o.customer_id = c.id where o.status = $1 group by 1 order by 2 desc",
        "/* report */ with recent as (select * from orders where created_at > now() - interval '30 days') select count(*), E'it\\'s', $$a;b$$ from recent -- done")]
    public string Sql { get; set; } = "";

    [Benchmark]
    public IReadOnlyList<StatementText> Read() => StatementReader.Read(Sql);
}

/// <summary>
/// Hostile text of the default max_sql_length (64 KB) that a caller can send before any grant is checked: a run of signs
/// (each one an operator once the run is cut) and writes nested in parentheses, each read in one pass.
/// </summary>
[MemoryDiagnoser]
public class HostileLexer
{
    private string _sql = "";

    [Params("signs", "nested-writes")]
    public string Shape { get; set; } = "";

    [GlobalSetup]
    public void Setup() => _sql = Shape == "signs"
        ? "select 1 " + string.Concat(Enumerable.Repeat("+-", 32_768)) + " 2"
        : "with d as " + string.Concat(Enumerable.Repeat("(delete ", 8_192));

    [Benchmark]
    public IReadOnlyList<StatementText> Read() => StatementReader.Read(_sql);
}

/// <summary>
/// A repeated statement's classification: read it, find its plan facts in the cache (no EXPLAIN), authorize the plan
/// against the caller's grants and vet its functions.
/// </summary>
[MemoryDiagnoser]
public class CachedClassification
{
    private const string Sql = "select c.country, sum(o.total) from customers c join orders o on o.customer_id = c.id where o.status = $1 group by 1";
    private readonly ClassificationCache _cache = new();
    private readonly AgentIdentity _analyst = new("analyst", ["finance"], "dev", "analyst", null, DateTimeOffset.MaxValue);
    private readonly Grant[] _grants = [new("shop", AccessLevel.Read, ["public"], [])];

    [GlobalSetup]
    public void Setup()
    {
        var plan = PlanReader.Read("""
            [{"Plan": {"Node Type": "Aggregate", "Output": ["c.country", "sum(o.total)"], "Plans": [
              {"Node Type": "Hash Join", "Output": ["c.country", "o.total"], "Plans": [
                {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "o", "Output": ["o.total", "o.customer_id"], "Filter": "(o.status = 'x'::text)"},
                {"Node Type": "Seq Scan", "Relation Name": "customers", "Schema": "public", "Alias": "c", "Output": ["c.country", "c.id"]}]}]}}]
            """);
        _cache.Set("shop", StatementReader.Read(Sql)[0].Normalized, "v1", plan);
        for (var i = 0; i < 1000; i++)
        {
            _cache.Set("shop", $"select {i}", "v1", plan);
        }
    }

    [Benchmark]
    public Decision? Classify()
    {
        var statement = StatementReader.Read(Sql)[0];
        _cache.TryGet("shop", statement.Normalized, "v1", out var plan);
        var decision = StatementAuthorizer.AuthorizePlan(_analyst, "shop", _grants, plan);
        return decision.IsAllowed ? FunctionVetting.Vet(plan.Functions, FunctionCatalog.Empty, plan.Writes, []) : decision;
    }
}

/// <summary>
/// An agent token checked on a call: once the same token was verified (the cache), and a token seen for the first time
/// (RS256 signature, claims, lifetime).
/// </summary>
[MemoryDiagnoser]
public class TokenValidation
{
    private const int Distinct = 4096;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-micro-" + Guid.NewGuid().ToString("N")[..8]);
    private IssuerConfig _issuer = null!;
    private string[] _tokens = [];
    private TokenValidator _cached = null!;
    private TokenValidator _fresh = null!;
    private int _next;

    [GlobalSetup]
    public async Task Setup()
    {
        Directory.CreateDirectory(_directory);
        _issuer = new IssuerConfig("gatehouse-dev", ["gatehouse"], new IssuerKeySource(Path.Combine(_directory, "dev.pem"), null, null, null), "sub", "groups", ["RS256"], TimeSpan.Zero);
        var key = DevIssuer.LoadOrCreateKey(_issuer.Keys.DevKeyFile!);
        _tokens = Enumerable.Range(0, Distinct)
            .Select(i => DevIssuer.Mint(_issuer, key, $"agent-{i}", ["finance"], TimeSpan.FromHours(4), DateTimeOffset.UtcNow))
            .ToArray();
        _cached = new TokenValidator([_issuer], TimeProvider.System);
        _fresh = new TokenValidator([_issuer], TimeProvider.System);
        await _cached.ValidateAsync(_tokens[0], CancellationToken.None);
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_directory, recursive: true);

    [Benchmark(Baseline = true)]
    public ValueTask<IdentityResult> Cached() => _cached.ValidateAsync(_tokens[0], CancellationToken.None);

    [Benchmark]
    public ValueTask<IdentityResult> FirstSeen()
    {
        // Each token once per validator: a new validator (amortized over 4,096 tokens) when the tokens run out.
        if (_next == Distinct)
        {
            _next = 0;
            _fresh = new TokenValidator([_issuer], TimeProvider.System);
        }

        return _fresh.ValidateAsync(_tokens[_next++], CancellationToken.None);
    }
}

/// <summary>The Mask stage's backstop: the content detectors over every value of a result.</summary>
[MemoryDiagnoser]
public class Masking
{
    private static readonly string[] Mix =
    [
        "Amelia Hartmann", "delivered", "2025-01-14 09:12:00+00", "gift wrap, leave at the door", "412.50", "US", "card",
        "amelia.hartmann@example.com", "536-22-4821", "4111111111111111", "+1 415 555 0134", "order 100045 shipped", "captured",
        "Lucía Fernández", "deliver after 6pm", "100001",
    ];

    private QueryResult _plain = null!;
    private QueryResult _sensitive = null!;

    [GlobalSetup]
    public void Setup()
    {
        _plain = Rows(1000, i => [(long)i, Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(BitConverter.GetBytes(i))), "delivered"]);
        _sensitive = Rows(1000, i => [(long)i, Mix[i % Mix.Length], Mix[(i + 7) % Mix.Length]]);
    }

    [Benchmark]
    public int DetectorsPerValue()
    {
        var counts = new MaskingCounts();
        var changed = 0;
        foreach (var value in Mix)
        {
            changed += ReferenceEquals(ContentDetectors.Mask(value, counts), value) ? 0 : 1;
        }

        return changed;
    }

    /// <summary>1,000 rows of an id, an MD5 hex digest and a status: nothing to mask.</summary>
    [Benchmark]
    public QueryResult ThousandPlainRows() => ResultMasker.Mask(_plain, new MaskingCounts());

    /// <summary>The same, as the pipeline masks for an agent: with its unmask rights (none), checked for each kind of each value.</summary>
    [Benchmark]
    public QueryResult ThousandPlainRowsForAnAgent() => ResultMasker.Mask(_plain, new MaskingCounts(), NoUnmaskRights);

    private static readonly HashSet<string> NoUnmaskRights = new(StringComparer.Ordinal);

    /// <summary>1,000 rows drawn from the mix above: emails, SSNs, cards and phones among ordinary values.</summary>
    [Benchmark]
    public QueryResult ThousandMixedRows() => ResultMasker.Mask(_sensitive, new MaskingCounts());

    internal static QueryResult Rows(int count, Func<int, object?[]> row) =>
        new([new("id", "bigint"), new("a", "text"), new("b", "text")], Enumerable.Range(0, count).Select(row).ToList(), false, null, null);
}

/// <summary>A result as the agent receives it: the MCP tool result (text block and structured content) of one row and of 1,000.</summary>
[MemoryDiagnoser]
public class ResultJson
{
    private CallOutcome _outcome = null!;
    private CallOutcome _point = null!;

    [GlobalSetup]
    public void Setup()
    {
        var result = Masking.Rows(1000, i => [(long)i, Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(BitConverter.GetBytes(i))), "delivered"]);
        _outcome = new CallOutcome(AuditRecord.NewId(), Decision.Allow("grant.read", "read granted"), result);
        _point = new CallOutcome(AuditRecord.NewId(), Decision.Allow("grant.read", "read granted"), Masking.Rows(1, i => [42L, "delivered", "412.50"]));
    }

    /// <summary>The load benchmark's point query: one row of three columns.</summary>
    [Benchmark]
    public ModelContextProtocol.Protocol.CallToolResult OneRow() => ResultMapper.ToResult(_point);

    [Benchmark]
    public ModelContextProtocol.Protocol.CallToolResult ThousandRows() => ResultMapper.ToResult(_outcome);
}

/// <summary>
/// Sealing a finished call onto the hash chain, as the audit writer does for every call: the record's canonical JSON, then
/// SHA-256 over the previous link's hash and that text.
/// </summary>
[MemoryDiagnoser]
public class AuditSeal
{
    // The finished record of the point query the other audit benchmarks write.
    private readonly AuditRecord _record = AuditCall.Finished(AuditCall.Started());

    private readonly string _previous = Convert.ToHexStringLower(new byte[32]);

    [Benchmark(Baseline = true)]
    public string CanonicalText() => AuditChain.Canonical(_record);

    [Benchmark]
    public string Link() => AuditChain.Hash(_previous, AuditChain.Canonical(_record));
}

/// <summary>
/// One call's two audit writes (the started record, then the final one), each stored before it returns, in the SQLite
/// state store with its group-commit writer; alone, and with 32 calls at once sharing commits.
/// </summary>
[MemoryDiagnoser]
public class AuditAppend
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-micro-" + Guid.NewGuid().ToString("N")[..8]);
    private SqliteStateStore _store = null!;

    /// <summary>gateway.audit.durability: power_loss (one fsync per call, the default) or process_crash (none).</summary>
    [Params(AuditDurability.PowerLoss, AuditDurability.ProcessCrash)]
    public AuditDurability Durability { get; set; }

    [GlobalSetup]
    public async Task Setup()
    {
        Directory.CreateDirectory(_directory);
        _store = await SqliteStateStore.OpenAsync(Path.Combine(_directory, "state.db"), CancellationToken.None);
        _store.Durability = Durability;
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_directory, recursive: true);

    [Benchmark(Baseline = true)]
    public Task OneCall() => RecordCallAsync();

    // Each call on a thread of its own, as calls arrive in the gateway: started inline, each would commit alone before the
    // next began (a write that finds nobody committing commits on its caller's thread), and nothing would share a commit.
    [Benchmark(OperationsPerInvoke = 32)]
    public Task ThirtyTwoCallsAtOnce() => Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(RecordCallAsync)));

    private Task RecordCallAsync() => AuditCall.RecordAsync(_store);
}

/// <summary>
/// The state a call reads on the way in, from the SQLite state store: whether an admin has disabled the caller (by agent,
/// subject or token id), and its approved time-boxed grants. Both are read on every call, so a revocation or an approval
/// counts from the next call on; alone, and with 32 calls at once.
/// </summary>
[MemoryDiagnoser]
public class StateReads
{
    private static readonly string[] SwitchKeys = ["analyst", AgentKeys.Subject("analyst-sub"), AgentKeys.TokenId("jti-1")];
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-micro-" + Guid.NewGuid().ToString("N")[..8]);
    private SqliteStateStore _store = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        Directory.CreateDirectory(_directory);
        _store = await SqliteStateStore.OpenAsync(Path.Combine(_directory, "state.db"), CancellationToken.None);
        await _store.SetDisabledAsync("someone-else", disabled: true, "admin", CancellationToken.None);
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_directory, recursive: true);

    [Benchmark(Baseline = true)]
    public Task OneCall() => ReadAsync();

    [Benchmark(OperationsPerInvoke = 32)]
    public Task ThirtyTwoCallsAtOnce() => Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(ReadAsync)));

    private async Task ReadAsync()
    {
        if (await _store.FindDisabledAsync(SwitchKeys, CancellationToken.None) is not null)
        {
            throw new InvalidOperationException("the caller is not disabled");
        }

        await _store.ActiveGrantsAsync("analyst", DateTimeOffset.UtcNow, CancellationToken.None);
    }
}
