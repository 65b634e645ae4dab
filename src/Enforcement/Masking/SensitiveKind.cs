namespace Gatehouse.Enforcement.Masking;

/// <summary>Kinds of sensitive value the content detectors recognize in any text.</summary>
public enum SensitiveKind
{
    Email,
    Ssn,
    Card,
    Phone,
    Iban,
    Jwt,
    PrivateKey,
    ApiKey,
}

/// <summary>How many values of each kind were masked in one result.</summary>
public sealed class MaskingCounts
{
    private readonly int[] _counts = new int[Enum.GetValues<SensitiveKind>().Length];

    public int Total => _counts.Sum();

    public void Add(SensitiveKind kind) => _counts[(int)kind]++;

    /// <summary>Adds another tally into this one.</summary>
    public void Add(MaskingCounts other)
    {
        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }
    }

    public IReadOnlyDictionary<string, int> ByKind() =>
        Enum.GetValues<SensitiveKind>().Where(k => _counts[(int)k] > 0).ToDictionary(k => Name(k), k => _counts[(int)k]);

    /// <summary>"email:3, card:1", or null when nothing was masked.</summary>
    public string? Describe() => Total == 0 ? null : string.Join(", ", ByKind().Select(p => $"{p.Key}:{p.Value}"));

    // Looked up for every text value of every result, once per kind: made once, not per value.
    private static readonly string[] Names = [.. Enum.GetValues<SensitiveKind>().Select(kind => kind switch
    {
        SensitiveKind.PrivateKey => "private_key",
        SensitiveKind.ApiKey => "api_key",
        _ => kind.ToString().ToLowerInvariant(),
    })];

    private static readonly string[] Classes = [.. Enum.GetValues<SensitiveKind>().Select(kind =>
        kind is SensitiveKind.Jwt or SensitiveKind.PrivateKey or SensitiveKind.ApiKey ? "secret" : Names[(int)kind])];

    /// <summary>The tag class whose unmask right lets a caller see this kind: secrets share one class.</summary>
    public static string ClassOf(SensitiveKind kind) => Classes[(int)kind];

    public static string Name(SensitiveKind kind) => Names[(int)kind];
}
