using System.Data.Common;

namespace Gatehouse.Enforcement;

/// <summary>The gateway's own state store did not answer a read a call depends on, so the call cannot be decided.</summary>
/// <param name="what">What could not be read, as a phrase: "whether this agent has been disabled".</param>
public sealed class StateUnavailableException(string what, Exception inner) : Exception($"The state store could not be read: {what}.", inner)
{
    public string What { get; } = what;

    /// <summary>A failure of the store itself (any ADO.NET provider's, a timeout, lost I/O), not a fault in the caller.</summary>
    public static bool IsStoreFailure(Exception e) => e is DbException or TimeoutException or IOException;
}
