namespace Gatehouse.Enforcement.Classification;

/// <summary>Asks the target database what a statement would touch, without running it.</summary>
public interface IStatementAnalyzer
{
    ValueTask<PlanFacts> ExplainAsync(string connection, string sql, IReadOnlyList<string?> parameters, CancellationToken cancellationToken);
}
