using System.Data.Common;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Reading the <c>connections</c> section: connection strings without secrets, secret sources, tags and masking.</summary>
public static partial class PolicyLoader
{
    private static Dictionary<string, ConnectionConfig> ReadConnections(YamlNodeReader reader, YamlNode node, string baseDir)
    {
        var result = new Dictionary<string, ConnectionConfig>(StringComparer.Ordinal);
        foreach (var (name, entryNode) in reader.Mapping(node, "connections"))
        {
            var what = $"connection '{name}'";
            var e = reader.Mapping(entryNode, what, "connection_string", "password_env", "password_file", "functions", "search_path", "observe_only", "masking", "tags", "strategies", "capture", "group_roles", "sslmode", "sslrootcert", "log_parse_trees");
            var cs = reader.String(e, "connection_string", $"{what}: connection_string", requiredAt: entryNode);
            if (cs is not null && !IsSafeConnectionString(cs, out var problem))
            {
                reader.Error(e["connection_string"], $"{what}: {problem}");
            }

            var secret = ReadSecret(reader, e, entryNode, what, baseDir);
            var functions = e.TryGetValue("functions", out var f) ? reader.Strings(f, $"{what}: functions") : [];
            var columnTags = e.TryGetValue("tags", out var tags) ? ReadTags(reader, tags, what) : new Dictionary<ColumnUse, string>();
            if (cs is not null)
            {
                result[name] = new ConnectionConfig(name, cs, secret)
                {
                    AllowedFunctions = functions,
                    SearchPath = reader.String(e, "search_path", $"{what}: search_path") ?? "public",
                    ObserveOnly = e.TryGetValue("observe_only", out var observe) && reader.Bool(observe, $"{what}: observe_only"),
                    LogParseTrees = e.TryGetValue("log_parse_trees", out var logTrees) && reader.Bool(logTrees, $"{what}: log_parse_trees"),
                    Tags = columnTags,
                    Masking = ReadMaskingMode(reader, e, what),
                    Strategies = e.TryGetValue("strategies", out var strategies) ? ReadStrategies(reader, strategies, what, columnTags.Values.ToHashSet(StringComparer.Ordinal)) : new Dictionary<string, MaskingStrategy>(),
                    LoginRole = LoginRole(cs),
                    Capture = ReadCapture(reader, e, what),
                    Tls = ReadTls(reader, e, what, cs, baseDir),
                    GroupRoles = e.TryGetValue("group_roles", out var roles)
                        ? reader.Mapping(roles, $"{what}: group_roles").Select(r => (r.Key, reader.String(r.Value, $"{what}: the role for group {r.Key}") ?? "")).ToList()
                        : [],
                };
                if (result[name] is { Masking: MaskingMode.Strict, Tags.Count: > 0, GroupRoles.Count: > 0 })
                {
                    reader.Error(e["group_roles"], $"{what}: group_roles cannot be combined with strict masking: the masking profile is already the role calls run as. Use masking: overlay, or drop group_roles.");
                }
                if (result[name] is { Masking: MaskingMode.Strict, Tags.Count: > 0, LoginRole: null })
                {
                    reader.Error(e["connection_string"], $"{what}: strict masking needs the connection string's Username: it is the login role 'gatehouse setup' makes a member of the masking profiles.");
                }
            }
        }

        return result;
    }

    private static Dictionary<ColumnUse, string> ReadTags(YamlNodeReader reader, YamlNode node, string what)
    {
        var tags = new Dictionary<ColumnUse, string>();
        foreach (var (key, classNode) in reader.Mapping(node, $"{what}: tags"))
        {
            var parts = key.Split('.');
            var className = reader.String(classNode, $"{what}: the class of {key}");
            if (parts.Length is < 2 or > 3 || parts.Any(string.IsNullOrWhiteSpace) || key.Contains('"', StringComparison.Ordinal))
            {
                reader.Error(classNode, $"{what}: '{key}' is not a column; write schema.table.column ({RelationName.Spelling}).");
                continue;
            }

            if (className is not null && !ValidClassName(className))
            {
                reader.Error(classNode, $"{what}: class '{className}' must be a lower-case word such as email, ssn, card, phone, iban, name, address, secret or free_text.");
                continue;
            }

            var relation = parts.Length == 3 ? new RelationName(parts[0], parts[1]) : new RelationName("public", parts[0]);
            var column = new ColumnUse(relation, parts[^1]);
            if (tags.TryGetValue(column, out var earlier))
            {
                // customers.ssn and public.customers.ssn are two keys but one column: the later would silently win, and could
                // make an ssn column an email one, shown to whoever may see emails.
                reader.Error(classNode, $"{what}: '{key}' tags {relation}.{column.Column} a second time (already as {earlier}); tag each column once.");
                continue;
            }

            tags[column] = className ?? "";
        }

        return tags;
    }

    private static bool ValidClassName(string name) => name.Length > 0 && name != "all" && name.All(c => char.IsAsciiLetterLower(c) || c == '_');

    // libpq's names and values, so a DBA's settings carry over; the connection string's own SSL keys would be a second place.
    private static TlsSettings? ReadTls(YamlNodeReader reader, Dictionary<string, YamlNode> e, string what, string connectionString, string baseDir)
    {
        var mode = reader.String(e, "sslmode", $"{what}: sslmode");
        var rootCert = reader.String(e, "sslrootcert", $"{what}: sslrootcert");
        if (mode is null && rootCert is null)
        {
            return null;
        }

        var builder = new DbConnectionStringBuilder();
        try
        {
            builder.ConnectionString = connectionString;
        }
        catch (ArgumentException)
        {
            return null;
        }

        if (builder.Keys.Cast<string>().Any(k => k.Replace(" ", "", StringComparison.Ordinal).ToLowerInvariant() is "sslmode" or "rootcertificate"))
        {
            reader.Error(e.GetValueOrDefault("sslmode") ?? e["sslrootcert"], $"{what}: TLS is set both here and in connection_string (SSL Mode / Root Certificate); set it in one place.");
            return null;
        }

        if (mode is not null && !TlsSettings.Modes.Contains(mode))
        {
            reader.Error(e["sslmode"], $"{what}: sslmode '{mode}' is not known; use one of {string.Join(", ", TlsSettings.Modes)} (verify-full in production).");
            return null;
        }

        mode ??= "verify-full";
        string? rootPath = null;
        if (rootCert is not null)
        {
            rootPath = Path.GetFullPath(rootCert, baseDir);
            if (mode is not ("verify-ca" or "verify-full"))
            {
                reader.Error(e["sslrootcert"], $"{what}: sslrootcert is only used to verify the server (sslmode verify-ca or verify-full); with sslmode {mode} it would be ignored.");
            }
            else if (!File.Exists(rootPath))
            {
                reader.Error(e["sslrootcert"], $"{what}: sslrootcert {rootPath} does not exist.");
            }
        }

        return new TlsSettings(mode, rootPath);
    }

    private static CaptureLevel ReadCapture(YamlNodeReader reader, Dictionary<string, YamlNode> e, string what) =>
        ReadChoice<CaptureLevel>(reader, e, "capture", what, new() { ["metadata"] = CaptureLevel.Metadata, ["full"] = CaptureLevel.Full }, "metadata", "use metadata (who, what, decision, counts, timings) or full (also the masked result)");

    private static MaskingMode ReadMaskingMode(YamlNodeReader reader, Dictionary<string, YamlNode> e, string what) =>
        ReadChoice<MaskingMode>(reader, e, "masking", what, new() { ["strict"] = MaskingMode.Strict, ["overlay"] = MaskingMode.Overlay }, "strict", "use strict (database profiles made by 'gatehouse setup') or overlay");

    // A key whose value is one of a few words; an unknown word is an error that names the choices.
    private static T ReadChoice<T>(YamlNodeReader reader, Dictionary<string, YamlNode> e, string key, string what, Dictionary<string, T> choices, string fallback, string hint)
    {
        var text = reader.String(e, key, $"{what}: {key}") ?? fallback;
        if (choices.TryGetValue(text, out var value))
        {
            return value;
        }

        reader.Error(e[key], $"{what}: {key} '{text}' is not known; {hint}.");
        return choices[fallback];
    }

    private static Dictionary<string, MaskingStrategy> ReadStrategies(YamlNodeReader reader, YamlNode node, string what, IReadOnlySet<string> taggedClasses)
    {
        var strategies = new Dictionary<string, MaskingStrategy>(StringComparer.Ordinal);
        foreach (var (className, strategyNode) in reader.Mapping(node, $"{what}: strategies"))
        {
            if (!taggedClasses.Contains(className))
            {
                // A misspelt class would leave the columns it meant on the default strategy, less strict than asked.
                reader.Error(strategyNode, $"{what}: strategies names class '{className}', which no tag of this connection has; the tagged classes are: {(taggedClasses.Count == 0 ? "none" : string.Join(", ", taggedClasses.Order(StringComparer.Ordinal)))}.");
            }

            // The strategy named null is written plain (the README does), where elsewhere a plain null is YAML's null.
            var text = strategyNode is YamlScalarNode { Style: ScalarStyle.Plain, Value: "null" }
                ? "null"
                : reader.String(strategyNode, $"{what}: the strategy for {className}");
            if (text is not null && Enum.TryParse<MaskingStrategy>(text, ignoreCase: true, out var strategy) && text == MaskingStrategies.Name(strategy))
            {
                strategies[className] = strategy;
            }
            else if (text is not null)
            {
                reader.Error(strategyNode, $"{what}: strategy '{text}' for {className} is not known; use redact, partial, token or null.");
            }
        }

        return strategies;
    }

    private static string? LoginRole(string connectionString)
    {
        var builder = new DbConnectionStringBuilder();
        try
        {
            builder.ConnectionString = connectionString;
        }
        catch (ArgumentException)
        {
            return null;
        }

        foreach (var key in new[] { "username", "user id", "userid", "user" })
        {
            if (builder.TryGetValue(key, out var value) && value is string { Length: > 0 } role)
            {
                return role;
            }
        }

        return null;
    }

    private static bool IsSafeConnectionString(string cs, out string problem)
    {
        problem = "";
        var builder = new DbConnectionStringBuilder();
        try
        {
            builder.ConnectionString = cs;
        }
        catch (ArgumentException)
        {
            problem = "connection_string is not a valid 'Key=Value;...' string.";
            return false;
        }

        // Npgsql takes a password under several names (Password, PWD, PSW; SSL Password for a client key): any of them would put
        // a secret in the policy.
        if (builder.Keys.Cast<string>().Select(k => k.Replace(" ", "", StringComparison.Ordinal).ToLowerInvariant()).Any(k => k.Contains("password", StringComparison.Ordinal) || k is "pwd" or "psw"))
        {
            problem = "connection_string must not contain a password; use password_env or password_file so the secret stays out of the policy.";
            return false;
        }

        return true;
    }

    private static SecretSource ReadSecret(YamlNodeReader reader, Dictionary<string, YamlNode> e, YamlNode at, string what, string baseDir, string envKey = "password_env", string fileKey = "password_file")
    {
        var env = reader.String(e, envKey, $"{what}: {envKey}");
        var file = reader.String(e, fileKey, $"{what}: {fileKey}");
        if (env is not null && file is not null)
        {
            reader.Error(at, $"{what}: set {envKey} or {fileKey}, not both.");
        }

        return new SecretSource(env, file is null ? null : Path.GetFullPath(file, baseDir));
    }
}
