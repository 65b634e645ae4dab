using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Tests.Enforcement.Policy;

/// <summary>What <c>policy check</c> points out without failing: guardrails matching names the policy gives nowhere else.</summary>
public sealed class PolicyNotesTests
{
    private static IReadOnlyList<string> Notes(string match, string more = "") =>
        PolicyNotes.Of(PolicyLoaderTests.Parse(PolicyLoaderTests.Minimal + more + $"\nguardrails:\n  - id: no-deletes\n    match: {{ kinds: [delete], {match} }}\n    outcome: deny\n"));

    [Fact]
    public void A_guardrail_on_an_agent_or_group_named_nowhere_else_is_pointed_out()
    {
        Assert.Equal(
            ["guardrail 'no-deletes' matches agent 'analsyt', whom the policy names nowhere else (no agents entry, no issuer's agents list); if that is a typo, the guardrail never matches"],
            Notes("agents: [analyst, analsyt]"));
        Assert.Contains("matches group 'finanse', which the policy names nowhere else", Assert.Single(Notes("groups: [finanse]")), StringComparison.Ordinal);
    }

    [Fact]
    public void Names_the_policy_gives_elsewhere_are_not_pointed_out()
    {
        Assert.Empty(Notes("agents: [analyst]"));
        Assert.Empty(Notes("groups: [finance]", "\ngroups:\n  finance:\n    grants:\n      - connection: shop\n        access: read\n        tables: [public.payments]"));
        Assert.Empty(Notes("groups: [dba]", "\napprovals:\n  groups: [dba]"));
        Assert.Empty(Notes("groups: [interns]", "\nquotas:\n  groups:\n    interns: { rows: 1000 }"));
    }
}
