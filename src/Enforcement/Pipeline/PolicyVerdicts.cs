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

    /// <summary>Observing, notes the refusals among <paramref name="decisions"/> whose rule is not noted yet.</summary>
    public void AlsoNote(IEnumerable<Decision?> decisions)
    {
        foreach (var decision in decisions)
        {
            if (decision is { IsAllowed: false } && !_observed.Any(d => d.Rule == decision.Rule))
            {
                Blocks(decision);
            }
        }
    }

    /// <summary>True on an observe_only connection: refusals are recorded, not enforced.</summary>
    public bool ObserveOnly => observeOnly;

    /// <summary>The decision to record when nothing blocked: the given one, or what observe mode let through.</summary>
    public Decision Final(Decision allowed) => _observed.Aggregate(allowed, Observed);

    /// <summary>
    /// <paramref name="allowed"/> (what <see cref="Final"/> gave) with a refusal observe mode let through after the statement
    /// ran: a bound judged by its rows (the rows it touched, the tables it wrote, the rows it returned). A rule already noted
    /// before the run (its estimate matched) is not noted twice.
    /// </summary>
    public Decision AlsoObserved(Decision allowed, Decision refusal)
    {
        if (_observed.Any(d => d.Rule == refusal.Rule))
        {
            return allowed;
        }

        _observed.Add(refusal);
        return Observed(allowed, refusal);
    }

    private static Decision Observed(Decision allowed, Decision refusal) =>
        allowed.Rule == WouldDeny
            ? allowed with { Reason = $"{allowed.Reason}; {refusal.Rule}: {refusal.Reason}" }
            : Decision.Allow(WouldDeny, $"observe_only: this ran, but enforcement would have refused it: {refusal.Rule}: {refusal.Reason}");

    private const string WouldDeny = "observe.would_deny";
}
