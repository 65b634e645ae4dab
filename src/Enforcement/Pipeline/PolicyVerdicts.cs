namespace Gatehouse.Enforcement.Pipeline;

/// <summary>
/// Collects a call's policy refusals. Normally the first one blocks; on an <c>observe_only</c> connection they are noted and
/// recorded instead, and the statement runs. Structural refusals (identity, unreadable SQL, kinds the gateway cannot run
/// safely) never pass through here, so observe mode cannot weaken them.
/// </summary>
internal sealed class PolicyVerdicts(bool observeOnly)
{
    private readonly List<Decision> _observed = [];

    /// <summary>True when <paramref name="decision"/> refuses and must stop the call.</summary>
    public bool Blocks(Decision? decision)
    {
        if (decision is null || decision.IsAllowed)
        {
            return false;
        }

        if (!observeOnly)
        {
            return true;
        }

        _observed.Add(decision);
        return false;
    }

    /// <summary>The decision to record when nothing blocked: the given one, or what observe mode let through.</summary>
    public Decision Final(Decision allowed) =>
        _observed.Count == 0
            ? allowed
            : Decision.Allow("observe.would_deny", "observe_only: this ran, but enforcement would have refused it: " + string.Join("; ", _observed.Select(d => $"{d.Rule}: {d.Reason}")));
}
