namespace Gatehouse.Enforcement.Classification;

/// <summary>Asks the target database what a statement would touch, without running it.</summary>
public interface IStatementAnalyzer
{
    /// <param name="role">The role (and, for a masking profile, schema) to plan under, so names resolve as they will at execution.</param>
    ValueTask<PlanFacts> ExplainAsync(string connection, string sql, IReadOnlyList<string?> parameters, Execution.SessionRole? role, CancellationToken cancellationToken);
}
