namespace Gatehouse.Enforcement.Policy;

/// <summary>A policy file that cannot be used; each error names the file, line and what is wrong.</summary>
public sealed class PolicyException(IReadOnlyList<string> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
