using Gatehouse.Enforcement.Classification;

namespace Gatehouse.Enforcement.Policy;

/// <summary>Access to whole schemas and/or named tables of one connection.</summary>
public sealed record Grant(string Connection, AccessLevel Access, IReadOnlyList<string> Schemas, IReadOnlyList<RelationName> Tables)
{
    /// <summary>Where the grant came from: a policy entry or a time-boxed approval.</summary>
    public string Source { get; init; } = "policy";

    /// <summary>When a time-boxed grant stops applying; null for policy grants.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>For an approved unmask request: the sensitive class the holder may see unmasked on the connection.</summary>
    public string? Unmask { get; init; }

    /// <summary>
    /// For a time-boxed grant: the person whose agent asked for it (the token's delegator), or null when the agent asked on
    /// its own. It holds only for calls made on behalf of the same person, as a statement approval does.
    /// </summary>
    public string? DelegatedBy { get; init; }

    public bool Covers(RelationName relation) =>
        Tables.Contains(relation) || Schemas.Contains(relation.Schema, StringComparer.Ordinal);

    public bool Allows(AccessLevel needed) => Access >= needed;
}
