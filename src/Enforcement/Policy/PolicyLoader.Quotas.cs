using Gatehouse.Enforcement.Quotas;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Reading the <c>quotas</c> section: a default per agent, per-agent overrides, and shared per-group budgets.</summary>
public static partial class PolicyLoader
{
    private static QuotaSettings ReadQuotas(YamlNodeReader reader, YamlNode node, IReadOnlyDictionary<string, PrincipalPolicy> agents, IReadOnlyDictionary<string, PrincipalPolicy> groups)
    {
        var e = reader.Mapping(node, "quotas", "default", "agents", "groups");
        return new QuotaSettings(
            e.TryGetValue("default", out var d) ? ReadLimits(reader, d, "quotas.default") : null,
            ReadNamedLimits(reader, e, "agents", agents),
            ReadNamedLimits(reader, e, "groups", groups));
    }

    private static Dictionary<string, QuotaLimits> ReadNamedLimits(YamlNodeReader reader, Dictionary<string, YamlNode> e, string key, IReadOnlyDictionary<string, PrincipalPolicy> known)
    {
        var result = new Dictionary<string, QuotaLimits>(StringComparer.Ordinal);
        if (!e.TryGetValue(key, out var node))
        {
            return result;
        }

        foreach (var (name, limits) in reader.Mapping(node, $"quotas.{key}"))
        {
            if (key == "agents" && !known.ContainsKey(name))
            {
                reader.Error(limits, $"quotas.agents: '{name}' is not an agent of this policy.");
            }

            if (ReadLimits(reader, limits, $"quotas.{key}.{name}") is { } read)
            {
                result[name] = read;
            }
        }

        return result;
    }

    private static QuotaLimits? ReadLimits(YamlNodeReader reader, YamlNode node, string what)
    {
        var e = reader.Mapping(node, what, "calls_per_minute", "concurrent_calls", "rows", "bytes", "window");
        if (e.Keys.All(k => k == "window"))
        {
            reader.Error(node, $"{what}: set at least one of calls_per_minute, concurrent_calls, rows or bytes.");
            return null;
        }

        return new QuotaLimits(
            e.TryGetValue("calls_per_minute", out var c) ? reader.Int(c, $"{what}: calls_per_minute", 1, 1_000_000) : null,
            e.TryGetValue("concurrent_calls", out var cc) ? reader.Int(cc, $"{what}: concurrent_calls", 1, 10_000) : null,
            e.TryGetValue("rows", out var r) ? reader.Int(r, $"{what}: rows", 1, int.MaxValue) : null,
            e.TryGetValue("bytes", out var b) ? reader.Int(b, $"{what}: bytes", 1024, int.MaxValue) : null,
            e.TryGetValue("window", out var w) ? reader.Duration(w, $"{what}: window", TimeSpan.FromMinutes(1), TimeSpan.FromDays(31)) : QuotaLimits.DefaultWindow);
    }
}
