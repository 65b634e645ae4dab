namespace Gatehouse.Connectors.State;

/// <summary>
/// Where the policy says the gateway keeps its state, there is none, and the caller may not make it: an admin command given
/// the wrong policy or database would otherwise act on a new, empty store that no gateway reads.
/// </summary>
public sealed class MissingStateException(string message) : IOException(message);
