using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Authorization;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.Enforcement.Quotas;

namespace Gatehouse.Enforcement.Pipeline;

/// <summary>The policy version a call runs under, with what is built once per version.</summary>
internal sealed record PolicyRules(GatewayPolicy Policy, GrantResolver Grants, QuotaTracker Quotas);

/// <summary>
/// One call's record as it fills in, and the policy version it runs under. Nothing may touch a database until
/// <see cref="RecordBeforeDatabaseAsync"/> has stored the record. Without an audit store the scope explains a statement
/// instead (<c>gatehouse policy explain</c>): nothing is recorded, and nothing runs but EXPLAIN.
/// </summary>
internal sealed class CallScope(IAuditStore? audit, AuditRecord record, PolicyRules rules)
{
    private readonly List<ExplainStep>? _steps = audit is null ? [] : null;
    private bool _begun;

    /// <summary>True when the call only explains what it would do.</summary>
    public bool Explaining => _steps is not null;

    /// <summary>The steps noted so far when explaining.</summary>
    public IReadOnlyList<ExplainStep> Steps => _steps ?? [];

    /// <summary>Notes a step of the decision when explaining; does nothing otherwise.</summary>
    public void Note(string step, Func<string> detail) => _steps?.Add(new ExplainStep(step, detail()));

    public PolicyRules Rules { get; } = rules;

    /// <summary>The policy in force when the call started; a reload during the call does not change it.</summary>
    public GatewayPolicy Policy => Rules.Policy;

    public AuditRecord Record { get; private set; } = record;

    public AgentIdentity Identity { get; private set; } = null!;

    /// <summary>What the call's quotas hold for it: how many more rows and bytes it may receive. Null when quotas are not judged.</summary>
    public QuotaLease? Quota { get; set; }

    /// <summary>The classes the caller may see unmasked on the call's connection, once known (policy and approved requests).</summary>
    public IReadOnlySet<string>? Unmask { get; set; }

    public void Identify(AgentIdentity identity)
    {
        Identity = identity;
        Attribute(identity);
    }

    /// <summary>Names the caller in the record only: a verified token refused all the same (its agent disabled) is on record as its agent's.</summary>
    public void Attribute(AgentIdentity identity) =>
        Record = Record with
        {
            Agent = identity.Agent,
            Groups = identity.Groups,
            Issuer = identity.Issuer,
            Subject = identity.Subject,
            TokenId = identity.TokenId,
            ClientId = identity.ClientId,
            DelegatedBy = identity.DelegatedBy,
        };

    public void Describe(Func<AuditRecord, AuditRecord> change) => Record = change(Record);

    /// <summary>Stores the outcome before a write commits; if that fails the write is rolled back.</summary>
    public async ValueTask RecordOutcomeAsync(Decision decision, long? rows, string classification, CancellationToken cancellationToken)
    {
        if (audit is null)
        {
            return;
        }

        try
        {
            await audit.CompleteAsync(
                Record with
                {
                    Decision = decision.Verdict,
                    Rule = decision.Rule,
                    Reason = decision.Reason,
                    RowCount = rows,
                    Classification = classification,
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new AuditUnavailableException(e);
        }
    }

    /// <summary>Stores the started record; if that fails the call stops here and nothing reaches the database.</summary>
    public async ValueTask RecordBeforeDatabaseAsync(CancellationToken cancellationToken)
    {
        if (_begun || audit is null)
        {
            return;
        }

        try
        {
            await audit.BeginAsync(Record, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new AuditUnavailableException(e);
        }

        _begun = true;
    }
}

/// <summary>The audit store could not make a record durable.</summary>
internal sealed class AuditUnavailableException(Exception inner) : Exception("The audit store is unavailable.", inner);

/// <summary>The Mask stage could not check a result; it must not leave the gateway.</summary>
internal sealed class MaskingFailedException(Exception inner) : Exception("Masking failed.", inner);
