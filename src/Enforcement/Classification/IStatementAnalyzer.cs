namespace Gatehouse.Enforcement.Classification;

/// <summary>Asks the target database what a statement would touch, without running it.</summary>
public interface IStatementAnalyzer
{
    /// <param name="profile">The strict-mode masking profile (role and schema) to plan under, so names resolve as they will at execution.</param>
    ValueTask<PlanFacts> ExplainAsync(string connection, string sql, IReadOnlyList<string?> parameters, string? profile, CancellationToken cancellationToken);
}
