namespace Gatehouse.Enforcement.Classification;

/// <summary>One statement cut out of the submitted text, with its kind and the keyword that decided it.</summary>
public sealed record StatementText(string Sql, StatementKind Kind, string Keyword);
