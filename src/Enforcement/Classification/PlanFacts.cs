using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Classification;

/// <summary>What PostgreSQL's plan says a statement touches: relations read and written, functions called, estimated rows.</summary>
public sealed record PlanFacts(IReadOnlyList<RelationAccess> Relations, IReadOnlyList<FunctionCall> Functions, double EstimatedRows)
{
    public bool Writes => Relations.Any(r => r.Access == AccessLevel.Write);
}

/// <summary>One relation in a plan and the access the plan needs on it (a ModifyTable target needs write).</summary>
public sealed record RelationAccess(RelationName Relation, AccessLevel Access, string Operation);

/// <summary>The gateway's understanding of one statement: its text, kind and, where PostgreSQL could explain it, the plan facts.</summary>
public sealed record Classification(StatementText Statement, PlanFacts? Plan);
