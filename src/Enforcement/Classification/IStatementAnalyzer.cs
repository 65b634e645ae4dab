namespace Gatehouse.Enforcement.Classification;

/// <summary>Asks the target database what a statement would touch, without running it.</summary>
public interface IStatementAnalyzer
{
    /// <param name="role">The role (and, for a masking profile, schema) to plan under, so names resolve as they will at execution.</param>
    ValueTask<PlanFacts> ExplainAsync(string connection, string sql, IReadOnlyList<string?> parameters, Execution.SessionRole? role, CancellationToken cancellationToken);

    /// <summary>
    /// What the statement names once PostgreSQL has parsed and analyzed it, before anything plans it: planning already runs
    /// an IMMUTABLE function with constant arguments, so the functions are checked from this first.
    /// </summary>
    ValueTask<StatementReferences> ResolveAsync(string connection, string sql, Execution.SessionRole? role, CancellationToken cancellationToken);
}
