using Gatehouse.Enforcement.Classification;

namespace Gatehouse.Enforcement.Guardrails;

/// <summary>What a guardrail does when it matches.</summary>
public enum GuardrailOutcome
{
    Deny,

    /// <summary>A human must approve this exact statement first; the caller waits for the decision (or comes back).</summary>
    RequireApproval,
}

/// <summary>A policy guardrail: an id the refusal names, a match on the classification, and an outcome.</summary>
public sealed record GuardrailRule(string Id, string? Connection, GuardrailMatch Match, GuardrailOutcome Outcome, string? Message);

/// <summary>
/// Conditions on a classified statement; all given conditions must hold, and a list matches when any of its items does.
/// </summary>
public sealed record GuardrailMatch
{
    public IReadOnlyList<StatementKind> Kinds { get; init; } = [];

    /// <summary>Relations the plan reads or writes.</summary>
    public IReadOnlyList<RelationName> Tables { get; init; } = [];

    /// <summary>Plan operations: read, insert, update, delete, merge.</summary>
    public IReadOnlyList<string> Operations { get; init; } = [];

    /// <summary>True: only UPDATE/DELETE without their own WHERE clause.</summary>
    public bool? WithoutWhere { get; init; }

    /// <summary>Estimated rows written (for writes) or returned (for reads) at least this many.</summary>
    public double? MinRows { get; init; }

    /// <summary>Functions called, as name or schema.name.</summary>
    public IReadOnlyList<string> Functions { get; init; } = [];

    public IReadOnlyList<string> Agents { get; init; } = [];

    public IReadOnlyList<string> Groups { get; init; } = [];

    /// <summary>True: only when a human delegated to the agent; false: only when none did.</summary>
    public bool? Delegated { get; init; }

    /// <summary>Only when one of these humans delegated.</summary>
    public IReadOnlyList<string> DelegatedBy { get; init; } = [];

    /// <summary>Only when the delegating human is in one of these groups (as the delegation claim says).</summary>
    public IReadOnlyList<string> DelegatorGroups { get; init; } = [];

    public bool IsEmpty =>
        Kinds.Count == 0 && Tables.Count == 0 && Operations.Count == 0 && WithoutWhere is null && MinRows is null
        && Functions.Count == 0 && Agents.Count == 0 && Groups.Count == 0 && Delegated is null && DelegatedBy.Count == 0 && DelegatorGroups.Count == 0;
}
