using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Quotas;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Loads and validates a policy file; an invalid file is a <see cref="PolicyException"/> listing every error with its line.</summary>
public static partial class PolicyLoader
{
    /// <summary>The largest policy file read: a thousand agents with a dozen grants each take well under 1 MiB.</summary>
    public const long MaxFileBytes = 16 * 1024 * 1024;

    public static GatewayPolicy LoadFile(string path)
    {
        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
        {
            throw new PolicyException([$"{path}: the policy file does not exist."]);
        }

        if (Oversized(fullPath) is { } problem)
        {
            throw new PolicyException([$"{path}: {problem}"]);
        }

        return Parse(File.ReadAllText(fullPath), fullPath);
    }

    /// <summary>Why a policy file is too large to read, or null when it is not.</summary>
    public static string? Oversized(string path) => new FileInfo(path).Length > MaxFileBytes
        ? $"the policy file is larger than {MaxFileBytes / (1024 * 1024)} MiB; no policy needs that, so it is not read"
        : null;

    public static GatewayPolicy Parse(string yaml, string sourcePath)
    {
        var stream = new YamlStream();
        try
        {
            YamlShapeCheck.Check(yaml, sourcePath);
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new PolicyException([$"{sourcePath}:{e.Start.Line}:{e.Start.Column}: not valid YAML: {e.InnerException?.Message ?? e.Message}"]);
        }

        if (stream.Documents.Count != 1)
        {
            throw new PolicyException([$"{sourcePath}: expected exactly one YAML document, found {stream.Documents.Count}."]);
        }

        var reader = new YamlNodeReader(sourcePath);
        var baseDir = Path.GetDirectoryName(sourcePath) ?? ".";
        var root = stream.Documents[0].RootNode;
        var top = reader.Mapping(root, "the policy file", "gateway", "connections", "issuers", "agents", "groups", "guardrails", "approvals", "admin", "quotas");

        var gateway = ReadGateway(reader, top.GetValueOrDefault("gateway"), baseDir);
        var connections = top.TryGetValue("connections", out var c) ? ReadConnections(reader, c, baseDir) : new Dictionary<string, ConnectionConfig>();
        if (connections.Count == 0)
        {
            reader.Error(root, "no connections are defined; add at least one under 'connections'.");
        }

        var issuers = top.TryGetValue("issuers", out var i) ? ReadIssuers(reader, i, baseDir) : [];
        if (issuers.Count == 0)
        {
            reader.Error(root, "no issuers are trusted; add at least one under 'issuers', or no agent can ever call.");
        }

        var agents = top.TryGetValue("agents", out var a) ? ReadPrincipals(reader, a, "agent", connections) : new Dictionary<string, PrincipalPolicy>();
        var groups = top.TryGetValue("groups", out var g) ? ReadPrincipals(reader, g, "group", connections) : new Dictionary<string, PrincipalPolicy>();

        var guardrails = top.TryGetValue("guardrails", out var gr) ? GuardrailReader.Read(reader, gr, connections) : [];
        var approvals = ReadApprovals(reader, top.GetValueOrDefault("approvals"), baseDir);
        var admin = top.TryGetValue("admin", out var ad) ? ReadAdmin(reader, ad, issuers) : null;
        var quotas = top.TryGetValue("quotas", out var qu) ? ReadQuotas(reader, qu, agents, groups) : QuotaSettings.None;
        if (reader.Errors.Count > 0)
        {
            throw new PolicyException(reader.Errors);
        }

        return new GatewayPolicy(sourcePath, gateway, connections, issuers, agents, groups) { Guardrails = guardrails, Approvals = approvals, Admin = admin, Quotas = quotas, Hash = HashOf(yaml) };
    }

    /// <summary>Names one version of a policy file in logs and audit records: the start of the SHA-256 of its text.</summary>
    public static string HashOf(string yaml) =>
        "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(yaml)))[..16];

    private static GatewaySettings ReadGateway(YamlNodeReader reader, YamlNode? node, string baseDir)
    {
        var statePath = Path.Combine(baseDir, "gatehouse-state.db");
        var limits = QueryLimits.Default;
        var http = HttpSettings.LoopbackOnly;
        if (node is null)
        {
            return new GatewaySettings(statePath, limits, http);
        }

        var entries = reader.Mapping(node, "gateway", "state", "limits", "http", "audit", "telemetry", "tool_scopes", "store", "shutdown_deadline");
        if (reader.String(entries, "state", "gateway.state") is { } state)
        {
            statePath = Path.GetFullPath(state, baseDir);
        }

        if (entries.TryGetValue("limits", out var limitsNode))
        {
            var l = reader.Mapping(limitsNode, "gateway.limits", "max_rows", "max_result_bytes", "statement_timeout", "max_sql_length", "max_write_rows");
            limits = new QueryLimits(
                l.TryGetValue("max_rows", out var mr) ? reader.Int(mr, "max_rows", 1, 1_000_000) : limits.MaxRows,
                l.TryGetValue("max_result_bytes", out var mb) ? reader.Int(mb, "max_result_bytes", 1024, 512 * 1024 * 1024) : limits.MaxResultBytes,
                l.TryGetValue("statement_timeout", out var st) ? reader.Duration(st, "statement_timeout", TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1)) : limits.StatementTimeout,
                l.TryGetValue("max_sql_length", out var ms) ? reader.Int(ms, "max_sql_length", 16, 1024 * 1024) : limits.MaxSqlLength,
                l.TryGetValue("max_write_rows", out var mw) ? reader.Int(mw, "max_write_rows", 1, int.MaxValue) : limits.MaxWriteRows);
        }

        if (entries.TryGetValue("http", out var httpNode))
        {
            var h = reader.Mapping(httpNode, "gateway.http", "allowed_hosts", "allowed_origins", "trusted_proxies");
            http = new HttpSettings(
                h.TryGetValue("allowed_hosts", out var hosts) ? ReadHosts(reader, hosts) : http.AllowedHosts,
                h.TryGetValue("allowed_origins", out var origins) ? reader.Strings(origins, "allowed_origins") : http.AllowedOrigins)
            {
                TrustedProxies = h.TryGetValue("trusted_proxies", out var proxies) ? ReadProxies(reader, proxies) : [],
            };
        }

        return new GatewaySettings(statePath, limits, http)
        {
            Audit = entries.TryGetValue("audit", out var auditNode) ? ReadAudit(reader, auditNode, baseDir) : AuditSettings.Default,
            Store = entries.TryGetValue("store", out var storeNode) ? ReadStore(reader, storeNode, baseDir) : StoreSettings.StateFile,
            Telemetry = entries.TryGetValue("telemetry", out var telemetryNode) ? ReadTelemetry(reader, telemetryNode) : TelemetrySettings.Off,
            ToolScopes = entries.TryGetValue("tool_scopes", out var scopesNode) ? ReadToolScopes(reader, scopesNode) : new Dictionary<string, IReadOnlyList<string>>(),
            ShutdownDeadline = entries.TryGetValue("shutdown_deadline", out var deadline)
                ? reader.Duration(deadline, "gateway.shutdown_deadline", TimeSpan.Zero, TimeSpan.FromHours(1))
                : GatewaySettings.DefaultShutdownDeadline,
        };
    }

    // An empty list would not mean "none": ASP.NET would take its AllowedHosts setting from the environment, or allow any.
    private static IReadOnlyList<string> ReadHosts(YamlNodeReader reader, YamlNode node)
    {
        var hosts = reader.Strings(node, "gateway.http.allowed_hosts");
        if (hosts.Count == 0 && node is YamlSequenceNode)
        {
            reader.Error(node, "gateway.http.allowed_hosts is empty; name the host names clients use (a \"*\" entry allows any Host, for a proxy that checks it).");
        }

        return hosts;
    }

    // An address (one proxy) or a network in CIDR notation. Anyone in a trusted network can say who the client is and spread
    // a flood over as many addresses as it likes, so networks wider than a proxy needs are refused.
    private static List<string> ReadProxies(YamlNodeReader reader, YamlNode node)
    {
        var networks = new List<string>();
        foreach (var entry in reader.Sequence(node, "gateway.http.trusted_proxies"))
        {
            if (reader.String(entry, "gateway.http.trusted_proxies") is not { } text)
            {
                continue;
            }

            var cidr = !text.Contains('/') && System.Net.IPAddress.TryParse(text, out var address) ? $"{text}/{address.GetAddressBytes().Length * 8}" : text;
            if (!System.Net.IPNetwork.TryParse(cidr, out var network))
            {
                reader.Error(entry, $"gateway.http.trusted_proxies: '{text}' is not an IP address or a network such as 10.0.0.0/8.");
            }
            else if (!network.BaseAddress.Equals(System.Net.IPAddress.Parse(cidr[..cidr.IndexOf('/')])))
            {
                // 10.1.2.3/8 is most likely one proxy with a stray prefix; trusting all of 10.0.0.0/8 for it would be a surprise.
                reader.Error(entry, $"gateway.http.trusted_proxies: '{text}' has bits set past its prefix; write {network} for the network, or the address alone for one proxy.");
            }
            else
            {
                // Connections over IPv4 are matched as IPv4, so an IPv4-mapped entry is kept as the IPv4 network it maps.
                if (network.BaseAddress.IsIPv4MappedToIPv6 && network.PrefixLength >= 96)
                {
                    network = new System.Net.IPNetwork(network.BaseAddress.MapToIPv4(), network.PrefixLength - 96);
                }

                if (network.PrefixLength < (network.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 8 : 32))
                {
                    reader.Error(entry, $"gateway.http.trusted_proxies: '{text}' is wider than any proxy needs (shorter than /8 for IPv4, /32 for IPv6), and anyone in it could say who the client is and whether it came over https; name the proxies' own addresses.");
                }
                else
                {
                    networks.Add(network.ToString());
                }
            }
        }

        return networks;
    }

    private static Uri? ReadUri(YamlNodeReader reader, Dictionary<string, YamlNode> e, string key, string what)
    {
        var text = reader.String(e, key, $"{what}: {key}");
        if (text is null)
        {
            return null;
        }

        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.IsLoopback))
        {
            return uri;
        }

        reader.Error(e[key], $"{what}: {key} must be an absolute https URL (http only on loopback).");
        return null;
    }

    private static Dictionary<string, PrincipalPolicy> ReadPrincipals(YamlNodeReader reader, YamlNode node, string kind, IReadOnlyDictionary<string, ConnectionConfig> connections)
    {
        var result = new Dictionary<string, PrincipalPolicy>(StringComparer.Ordinal);
        foreach (var (name, entryNode) in reader.Mapping(node, $"{kind}s"))
        {
            var what = $"{kind} '{name}'";
            if ((kind == "agent" ? AgentKeys.AgentNameProblem(name) : AgentKeys.NameProblem(name)) is { } problem)
            {
                reader.Error(entryNode, $"the {kind} name '{name}' {problem}; names are how the audit log and the console tell {kind}s apart.");
            }

            var e = reader.Mapping(entryNode, what, "grants", "unmask");
            var grants = new List<Grant>();
            if (e.TryGetValue("grants", out var grantsNode))
            {
                foreach (var grantNode in reader.Sequence(grantsNode, $"{what}: grants"))
                {
                    if (ReadGrant(reader, grantNode, what, connections) is { } grant)
                    {
                        grants.Add(grant);
                    }
                }
            }

            var unmask = e.TryGetValue("unmask", out var u) ? reader.Strings(u, $"{what}: unmask") : [];
            foreach (var bad in unmask.Where(c => c != "all" && !ValidClassName(c)))
            {
                reader.Error(u!, $"{what}: unmask class '{bad}' must be a lower-case word, or all.");
            }

            result[name] = new PrincipalPolicy(name, grants) { Unmask = unmask };
        }

        return result;
    }

    private static Grant? ReadGrant(YamlNodeReader reader, YamlNode node, string what, IReadOnlyDictionary<string, ConnectionConfig> connections)
    {
        var e = reader.Mapping(node, $"a grant of {what}", "connection", "access", "schemas", "tables");
        var connection = reader.String(e, "connection", $"{what}: grant connection", requiredAt: node);
        if (connection is not null && !connections.ContainsKey(connection))
        {
            reader.Error(e["connection"], $"{what}: grant names connection '{connection}', which is not defined under 'connections'.");
        }

        var accessText = reader.String(e, "access", $"{what}: grant access", requiredAt: node);
        if (accessText is not null && !AccessLevels.TryParse(accessText, out _))
        {
            reader.Error(e["access"], $"{what}: access '{accessText}' is not known; use read or write.");
        }

        var schemas = e.TryGetValue("schemas", out var s) ? reader.Strings(s, $"{what}: schemas") : [];
        var tables = new List<RelationName>();
        if (e.TryGetValue("tables", out var t))
        {
            foreach (var text in reader.Strings(t, $"{what}: tables"))
            {
                if (RelationName.TryParse(text, out var relation))
                {
                    tables.Add(relation);
                }
                else
                {
                    reader.Error(t, $"{what}: '{text}' is not a table name; write schema.table ({RelationName.Spelling}).");
                }
            }
        }

        foreach (var bad in schemas.Where(x => x.Contains('"', StringComparison.Ordinal)))
        {
            reader.Error(s!, $"{what}: '{bad}' is not a schema name ({RelationName.Spelling}).");
        }

        if (schemas.Concat(tables.Select(x => x.Schema)).FirstOrDefault(Masking.DatabaseProfiles.IsGatewaySchema) is { } reserved)
        {
            // The token key and the profile views live there; a grant on them would hand out the key or another profile's view.
            reader.Error(node, $"{what}: schema '{reserved}' belongs to the gateway's strict masking and cannot be granted.");
        }

        if (schemas.Count == 0 && tables.Count == 0)
        {
            reader.Error(node, $"{what}: a grant must name schemas or tables.");
        }

        return connection is not null && AccessLevels.TryParse(accessText, out var access)
            ? new Grant(connection, access, schemas, tables)
            : null;
    }
}
