namespace Gatehouse.Connectors.State;

/// <summary>
/// Where the policy says the gateway keeps its state, there is none, and the caller may not make it: an admin command given
/// the wrong policy or database would otherwise act on a new, empty store that no gateway reads.
/// </summary>
/// <param name="summary">Where no state was found ("no gateway state at PATH"), without advice on what to do.</param>
/// <param name="advice">What to do about it, for a caller that needed the state.</param>
public sealed class MissingStateException(string summary, string advice) : IOException($"{summary}: {advice}")
{
    public string Summary { get; } = summary;
}
