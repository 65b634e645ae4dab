using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Reads typed values out of a YAML node tree, collecting every error with its line instead of stopping at the first.</summary>
internal sealed class YamlNodeReader(string file)
{
    private readonly List<string> _errors = [];

    public IReadOnlyList<string> Errors => _errors;

    public void Error(YamlNode node, string message) =>
        _errors.Add($"{file}:{node.Start.Line}:{node.Start.Column}: {message}");

    public void Error(string message) => _errors.Add($"{file}: {message}");

    /// <summary>The entries of a mapping; unknown keys are errors naming the keys that are allowed.</summary>
    public Dictionary<string, YamlNode> Mapping(YamlNode node, string what, params string[] allowedKeys)
    {
        var entries = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
        if (node is not YamlMappingNode mapping)
        {
            Error(node, $"{what} must be a mapping (key: value lines).");
            return entries;
        }

        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? "";
            if (allowedKeys.Length > 0 && !allowedKeys.Contains(key, StringComparer.Ordinal))
            {
                Error(keyNode, $"unknown key '{key}' in {what}; expected one of: {string.Join(", ", allowedKeys)}.");
                continue;
            }

            if (!entries.TryAdd(key, valueNode))
            {
                Error(keyNode, $"key '{key}' appears twice in {what}.");
            }
        }

        return entries;
    }

    public IReadOnlyList<YamlNode> Sequence(YamlNode node, string what)
    {
        if (node is YamlSequenceNode sequence)
        {
            return sequence.Children.ToList();
        }

        Error(node, $"{what} must be a list.");
        return [];
    }

    public string? String(YamlNode node, string what)
    {
        // YAML's null, which would otherwise be read as the text "~" or "null" (a sink or state file of that name, a
        // guardrail's reason, say).
        if (node is YamlScalarNode { Style: ScalarStyle.Plain, Value: "~" or "null" or "Null" or "NULL" } empty)
        {
            Error(node, $"{what} is {empty.Value} (YAML's null); leave the key out for its default, or quote \"{empty.Value}\" if that is the text meant.");
            return null;
        }

        if (node is YamlScalarNode { Value: { Length: > 0 } value })
        {
            return value;
        }

        Error(node, $"{what} must be a non-empty text value.");
        return null;
    }

    /// <summary>An optional text value; when <paramref name="requiredAt"/> is given, its absence is an error at that node.</summary>
    public string? String(Dictionary<string, YamlNode> entries, string key, string what, YamlNode? requiredAt = null)
    {
        if (entries.TryGetValue(key, out var node))
        {
            return String(node, what);
        }

        if (requiredAt is not null)
        {
            Error(requiredAt, $"{what} is missing (key '{key}').");
        }

        return null;
    }

    public IReadOnlyList<string> Strings(YamlNode node, string what)
    {
        if (node is YamlScalarNode scalar)
        {
            // "tables: orders, payments" is one value in YAML, which would name a single table "orders, payments" and so
            // match nothing: a guardrail on those tables would never hold.
            if (scalar is { Style: ScalarStyle.Plain, Value: { } plain } && plain.Contains(',', StringComparison.Ordinal))
            {
                Error(node, $"{what} is the one text value '{plain}'; write a list, [{plain}], or quote the value if its comma belongs to one name.");
                return [];
            }

            return String(node, what) is { } single ? [single] : [];
        }

        return Sequence(node, what).Select(n => String(n, what)).OfType<string>().ToList();
    }

    public bool Bool(YamlNode node, string what)
    {
        switch (String(node, what))
        {
            case "true":
                return true;
            case "false":
                return false;
            default:
                Error(node, $"{what} must be true or false.");
                return false;
        }
    }

    public int Int(YamlNode node, string what, int min, int max)
    {
        var text = String(node, what);
        if (text is not null && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
        {
            return value;
        }

        Error(node, $"{what} must be a whole number from {min} to {max}.");
        return min;
    }

    public TimeSpan Duration(YamlNode node, string what, TimeSpan min, TimeSpan max)
    {
        var text = String(node, what);
        if (Durations.TryParse(text, out var value) && value >= min && value <= max)
        {
            return value;
        }

        Error(node, $"{what} must be a duration from {Durations.Format(min)} to {Durations.Format(max)} (for example 30s or 15m).");
        return min;
    }
}
