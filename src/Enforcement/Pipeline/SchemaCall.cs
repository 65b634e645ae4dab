using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Masking;

namespace Gatehouse.Enforcement.Pipeline;

public sealed partial class GatewayPipeline
{
    public ValueTask<CallOutcome> DescribeSchemaAsync(CallContext call, DescribeSchemaRequest request, CancellationToken cancellationToken) =>
        RunAsync(
            call,
            (r, policy) => r with { Connection = RecordedConnection(request.Connection, policy), Classification = $"describe {Clip(request.Schema ?? "*", 100)}.{Clip(request.Table ?? "*", 100)}" },
            (scope, ct) => DescribeBodyAsync(scope, request, ct),
            cancellationToken);

    private async ValueTask<StepResult> DescribeBodyAsync(CallScope scope, DescribeSchemaRequest request, CancellationToken cancellationToken)
    {
        if (CheckConnection(scope.Policy, request.Connection) is { } unknown)
        {
            return new StepResult(unknown);
        }

        var connection = request.Connection!;
        var (grants, unmask) = await scope.Rules.Grants.ResolveRightsAsync(scope.Identity, connection, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        if (!Authorization.StatementAuthorizer.GivesAccess(grants))
        {
            return new StepResult(Decision.Deny("grant.no_access", $"agent '{scope.Identity.Agent}' has no grant on connection '{connection}'"));
        }

        await scope.RecordBeforeDatabaseAsync(cancellationToken).ConfigureAwait(false);
        if (await _tagDrift.CheckAsync(scope.Policy.Connections[connection], cancellationToken).ConfigureAwait(false) is { } drift)
        {
            return new StepResult(drift);
        }

        var tables = await catalog.DescribeAsync(connection, request.Schema, request.Table, cancellationToken).ConfigureAwait(false);
        var visible = tables.Where(t => grants.Any(g => g.Covers(t.Name))).ToList();
        if (visible.Count == 0 && request.Table is not null)
        {
            // The same words whether the table is missing or merely not granted: existence is not disclosed.
            return new StepResult(Decision.Deny("grant.relation_not_granted", $"agent '{scope.Identity.Agent}' may not see a table named '{Clip(request.Table, 100)}' on connection '{connection}'"));
        }

        var config = scope.Policy.Connections[connection];
        var counts = new MaskingCounts();
        var described = visible
            .Select(t => t with
            {
                // Comments are free text a DBA wrote, and may hold an example value: they pass the detectors as results do.
                Comment = t.Comment is null ? null : ContentDetectors.Mask(t.Comment, counts, unmask),
                Columns = t.Columns.Select(c => c with { Comment = c.Comment is null ? null : ContentDetectors.Mask(c.Comment, counts, unmask) })
                    // A partition or inheritance child has its parent's columns, and the parent's tags hold on them.
                    .Select(c => config.NearestTag(t.Ancestors.Prepend(t.Name), c.Name) is { } className
                        ? c with { SensitiveClass = className, MaskedForCaller = !unmask.Contains(className) && !unmask.Contains("all") }
                        : c).ToList(),

                // A key to a table the caller may not see would disclose that it exists, and its columns.
                ForeignKeys = t.ForeignKeys.Where(k => grants.Any(g => g.Covers(k.References))).ToList(),
            })
            .ToList();
        return new StepResult(Decision.Allow("schema.described", $"{visible.Count} table(s) visible under the caller's grants"), described, described.Count);
    }
}
