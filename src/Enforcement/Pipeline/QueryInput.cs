using Gatehouse.Enforcement.Policy;

namespace Gatehouse.Enforcement.Pipeline;

/// <summary>Bounds on the <c>query</c> tool's arguments, checked before anything else.</summary>
public sealed partial class GatewayPipeline
{
    private static Decision? CheckQueryInput(QueryLimits limits, QueryRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.Sql))
        {
            return Decision.Deny("sql.empty", "the sql argument is empty; pass one SQL statement");
        }

        if (request.Sql.Length > limits.MaxSqlLength)
        {
            return Decision.Deny("sql.too_large", $"the statement is {request.Sql.Length} characters long; the limit is {limits.MaxSqlLength}");
        }

        if (request.Parameters.Count > MaxParameters)
        {
            return Decision.Deny("request.too_many_parameters", $"{request.Parameters.Count} parameters were passed; the limit is {MaxParameters}");
        }

        if (request.Parameters.Sum(p => p?.Length ?? 0) > limits.MaxSqlLength)
        {
            return Decision.Deny("request.parameters_too_large", $"the parameters add up to more than {limits.MaxSqlLength} characters");
        }

        return request.MaxRows is < 1
            ? Decision.Deny("request.bad_max_rows", $"max_rows must be at least 1 (and at most {limits.MaxRows})")
            : null;
    }
}
