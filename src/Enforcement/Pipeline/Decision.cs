using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Enforcement.Pipeline;

/// <summary>A stage's verdict with the rule that produced it and a sentence a person (or agent) can act on.</summary>
public sealed record Decision(Verdict Verdict, string Rule, string Reason)
{
    public static Decision Allow(string rule, string reason) => new(Verdict.Allowed, rule, reason);

    public static Decision Deny(string rule, string reason) => new(Verdict.Denied, rule, reason);

    public static Decision Fail(string rule, string reason) => new(Verdict.Failed, rule, reason);

    public bool IsAllowed => Verdict == Verdict.Allowed;

    /// <summary>A guardrail refusal that a human may lift: the statement runs once approved.</summary>
    public bool NeedsApproval { get; init; }
}
