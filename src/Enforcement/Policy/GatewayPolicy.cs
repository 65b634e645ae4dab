using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Guardrails;
using Gatehouse.Enforcement.Quotas;

namespace Gatehouse.Enforcement.Policy;

/// <summary>The whole policy file, validated: connections, trusted issuers, and who may do what.</summary>
public sealed record GatewayPolicy(
    string SourcePath,
    GatewaySettings Gateway,
    IReadOnlyDictionary<string, ConnectionConfig> Connections,
    IReadOnlyList<IssuerConfig> Issuers,
    IReadOnlyDictionary<string, PrincipalPolicy> Agents,
    IReadOnlyDictionary<string, PrincipalPolicy> Groups)
{
    /// <summary>Which version of the policy file this is (<see cref="PolicyLoader.HashOf"/>), for logs and audit records.</summary>
    public string Hash { get; init; } = "";

    /// <summary>Guardrail rules, judged in order after the built-in guards.</summary>
    public IReadOnlyList<GuardrailRule> Guardrails { get; init; } = [];

    /// <summary>Who decides statements that guardrails send for approval, and the timings.</summary>
    public ApprovalSettings Approvals { get; init; } = ApprovalSettings.Default;

    /// <summary>The admin HTTP API, or null when it is not served.</summary>
    public AdminSettings? Admin { get; init; }

    /// <summary>Per-agent and per-group limits on calls, concurrency, rows and bytes.</summary>
    public QuotaSettings Quotas { get; init; } = QuotaSettings.None;
}

/// <summary>Gateway-wide settings: where state lives, limits, HTTP exposure.</summary>
public sealed record GatewaySettings(string StatePath, QueryLimits Limits, HttpSettings Http)
{
    /// <summary>Within Kubernetes' default 30 s grace period, with room for recording and closing.</summary>
    public static readonly TimeSpan DefaultShutdownDeadline = TimeSpan.FromSeconds(20);

    /// <summary>How long calls in flight may take to finish once the gateway is asked to stop (SIGTERM).</summary>
    public TimeSpan ShutdownDeadline { get; init; } = DefaultShutdownDeadline;

    /// <summary>Audit retention, the JSON-lines sink and the capture bound.</summary>
    public AuditSettings Audit { get; init; } = AuditSettings.Default;

    /// <summary>Where state lives: the state file, or PostgreSQL for several instances.</summary>
    public StoreSettings Store { get; init; } = StoreSettings.StateFile;

    /// <summary>OpenTelemetry traces and metrics; off unless an endpoint is set.</summary>
    public TelemetrySettings Telemetry { get; init; } = TelemetrySettings.Off;

    /// <summary>Scopes a token must carry to call each tool (tool name to scopes); a tool not listed needs none.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> ToolScopes { get; init; } = new Dictionary<string, IReadOnlyList<string>>();

    /// <summary>The scopes <paramref name="tool"/> needs that <paramref name="granted"/> lacks.</summary>
    public IReadOnlyList<string> MissingScopes(string tool, IReadOnlyList<string> granted) =>
        ToolScopes.TryGetValue(tool, out var needed) ? needed.Except(granted, StringComparer.Ordinal).ToList() : [];
}

/// <summary>Bounds on every statement and result.</summary>
/// <param name="MaxWriteRows">Writes the planner estimates to touch more rows than this are refused (built-in guard).</param>
public sealed record QueryLimits(int MaxRows, int MaxResultBytes, TimeSpan StatementTimeout, int MaxSqlLength, int MaxWriteRows = 10_000)
{
    public static QueryLimits Default { get; } = new(1000, 4 * 1024 * 1024, TimeSpan.FromSeconds(15), 64 * 1024);
}

/// <summary>Which Host and Origin headers the HTTP transport accepts, and which proxies in front of it it believes.</summary>
public sealed record HttpSettings(IReadOnlyList<string> AllowedHosts, IReadOnlyList<string> AllowedOrigins)
{
    public static HttpSettings LoopbackOnly { get; } = new(["localhost", "127.0.0.1", "[::1]"], []);

    /// <summary>
    /// Addresses of the reverse proxies (a TLS terminator, a load balancer) whose X-Forwarded-For and X-Forwarded-Proto say
    /// who the client is and whether it came over https. From any other address those headers are ignored: anyone could send
    /// them. None by default. Each is a network in CIDR notation (one address is /32 or /128), checked when the policy loads.
    /// </summary>
    public IReadOnlyList<string> TrustedProxies { get; init; } = [];
}

/// <summary>A target database. The password never appears in the connection string; it comes from a secret source.</summary>
public sealed record ConnectionConfig(string Name, string ConnectionString, SecretSource Password)
{
    /// <summary>Functions beyond the vetted built-ins that statements may call, as schema.name (or a bare name).</summary>
    public IReadOnlyList<string> AllowedFunctions { get; init; } = [];

    /// <summary>Columns tagged sensitive, with their class (email, ssn, card, …).</summary>
    public IReadOnlyDictionary<ColumnUse, string> Tags { get; init; } = new Dictionary<ColumnUse, string>();

    /// <summary>
    /// The class of <paramref name="column"/> of the first of <paramref name="selfAndAncestors"/> that tags it: a partition
    /// or inheritance child has its parents' columns, and their tags hold on them unless it tags the column itself.
    /// </summary>
    public string? NearestTag(IEnumerable<RelationName> selfAndAncestors, string column) =>
        selfAndAncestors.Select(r => Tags.GetValueOrDefault(new ColumnUse(r, column))).FirstOrDefault(c => c is not null);

    /// <summary>How tagged columns are protected on this connection.</summary>
    public MaskingMode Masking { get; init; } = MaskingMode.Strict;

    /// <summary>How strict mode masks each class; classes not listed use <see cref="MaskingStrategies.Default"/>.</summary>
    public IReadOnlyDictionary<string, MaskingStrategy> Strategies { get; init; } = new Dictionary<string, MaskingStrategy>();

    /// <summary>The role the gateway logs in as (the connection string's Username); strict mode makes it a member of the profile roles.</summary>
    public string? LoginRole { get; init; }

    /// <summary>The strategy strict mode applies to a class.</summary>
    public MaskingStrategy StrategyFor(string className) =>
        Strategies.TryGetValue(className, out var strategy) ? strategy : MaskingStrategies.Default(className);

    /// <summary>Decisions are computed and recorded, but policy refusals do not block (for trying a policy on live traffic).</summary>
    public bool ObserveOnly { get; init; }

    /// <summary>How much each call's audit record keeps: metadata, or also the masked result.</summary>
    public CaptureLevel Capture { get; init; } = CaptureLevel.Metadata;

    /// <summary>
    /// Roles the gateway becomes (<c>SET LOCAL ROLE</c>) for callers in these groups, in order: the first group the caller is in
    /// wins. PostgreSQL's privileges and row-level security for that role then apply. Not combined with strict masking.
    /// </summary>
    public IReadOnlyList<(string Group, string Role)> GroupRoles { get; init; } = [];

    /// <summary>
    /// Let PostgreSQL write each checked statement's parse tree (a LOG message, literal values included) to its server log.
    /// False (the default): the probe sets log_min_messages to FATAL for its transaction, which the login role needs SET on.
    /// </summary>
    public bool LogParseTrees { get; init; }

    /// <summary>The search_path every statement (and its EXPLAIN) runs with, so unqualified names resolve the same way each time.</summary>
    public string SearchPath { get; init; } = "public";

    /// <summary>TLS to PostgreSQL from the policy's sslmode and sslrootcert; null leaves it to the connection string (Npgsql's default: prefer).</summary>
    public TlsSettings? Tls { get; init; }
}

/// <summary>TLS to a PostgreSQL server, in libpq's terms.</summary>
/// <param name="Mode">disable, allow, prefer, require, verify-ca or verify-full.</param>
/// <param name="RootCertificate">The CA certificate(s) the server's certificate must chain to; null for the system's.</param>
public sealed record TlsSettings(string Mode, string? RootCertificate)
{
    public static IReadOnlyList<string> Modes { get; } = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

    /// <summary>Whether the server's certificate is checked (a man in the middle is refused).</summary>
    public bool Verifies => Mode is "verify-ca" or "verify-full";
}

/// <summary>Where a secret is read from: an environment variable or a file.</summary>
public sealed record SecretSource(string? EnvironmentVariable, string? FilePath)
{
    public static SecretSource None { get; } = new(null, null);

    /// <summary>Reads the secret now (files are re-read so rotation needs no restart).</summary>
    public string? Read()
    {
        if (EnvironmentVariable is not null)
        {
            return Environment.GetEnvironmentVariable(EnvironmentVariable)
                ?? throw new InvalidOperationException($"Environment variable {EnvironmentVariable} is not set.");
        }

        return FilePath is null ? null : File.ReadAllText(FilePath).TrimEnd('\r', '\n');
    }
}

/// <summary>Grants attached to one agent or one group, and the sensitive classes it may see unmasked ("all" for every class).</summary>
public sealed record PrincipalPolicy(string Name, IReadOnlyList<Grant> Grants)
{
    public IReadOnlyList<string> Unmask { get; init; } = [];
}

/// <summary>How strict mode replaces a tagged column in the profile views.</summary>
public enum MaskingStrategy
{
    /// <summary>The class name in brackets, e.g. <c>[ssn]</c> (null stays null).</summary>
    Redact,

    /// <summary>A harmless part: an email's domain, the last four digits of a card, phone, IBAN or SSN, the initial of a name.</summary>
    Partial,

    /// <summary>A deterministic HMAC-SHA256 token under a key agent roles cannot read: joins, GROUP BY and COUNT DISTINCT still work.</summary>
    Token,

    /// <summary>Always null.</summary>
    Null,
}

/// <summary>Default strategies per class.</summary>
public static class MaskingStrategies
{
    public static MaskingStrategy Default(string className) => className switch
    {
        "email" or "card" or "phone" or "iban" => MaskingStrategy.Partial,
        "secret" => MaskingStrategy.Null,
        _ => MaskingStrategy.Redact,
    };

    public static string Name(MaskingStrategy strategy) => strategy.ToString().ToLowerInvariant();
}

/// <summary>How a connection protects tagged columns.</summary>
public enum MaskingMode
{
    /// <summary>PostgreSQL enforces masking through per-profile roles and views created by setup.</summary>
    Strict,

    /// <summary>No objects in the database: statements that touch a tagged column are refused for callers without the unmask right.</summary>
    Overlay,
}
