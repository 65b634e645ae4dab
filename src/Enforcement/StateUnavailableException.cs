using System.Data.Common;

namespace Gatehouse.Enforcement;

/// <summary>The gateway's own state store did not answer a read or write a call depends on, so the call cannot go on.</summary>
/// <param name="what">What the gateway could not do, as a phrase that follows "could not": "read whether this agent has been disabled".</param>
public sealed class StateUnavailableException(string what, Exception inner) : Exception($"The state store did not answer, so the gateway could not {what}.", inner)
{
    public string What { get; } = what;

    /// <summary>A failure of the store itself (any ADO.NET provider's, a timeout, lost I/O), not a fault in the caller.</summary>
    public static bool IsStoreFailure(Exception e) => e is DbException or TimeoutException or IOException;

    /// <summary>Runs a state-store operation a call depends on; a failure of the store itself comes out as this exception, saying what could not be done.</summary>
    public static async ValueTask<T> GuardAsync<T>(string what, Func<ValueTask<T>> operation)
    {
        try
        {
            return await operation().ConfigureAwait(false);
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw new StateUnavailableException(what, e);
        }
    }

    /// <inheritdoc cref="GuardAsync{T}"/>
    public static async ValueTask GuardAsync(string what, Func<ValueTask> operation)
    {
        try
        {
            await operation().ConfigureAwait(false);
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw new StateUnavailableException(what, e);
        }
    }
}
