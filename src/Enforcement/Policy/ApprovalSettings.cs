namespace Gatehouse.Enforcement.Policy;

/// <summary>How statement approvals work: who decides, how many must agree, and how long each stage may last.</summary>
/// <param name="Approvers">The people who may decide; empty means anyone but the requester.</param>
/// <param name="Required">How many approvals a request needs (N of the approvers).</param>
/// <param name="Wait">How long a <c>query</c> waits for a decision before answering "pending" (below common client timeouts).</param>
/// <param name="PendingLifetime">A request nobody decides expires after this.</param>
/// <param name="ApprovalLifetime">An approval must be used within this.</param>
/// <param name="ResultLifetime">A result its requester missed (the call ended first) is kept this long.</param>
/// <param name="WriteTolerance">An approved write may touch at most the dry run's rows plus this many.</param>
public sealed record ApprovalSettings(
    IReadOnlyList<string> Approvers,
    int Required,
    TimeSpan Wait,
    TimeSpan PendingLifetime,
    TimeSpan ApprovalLifetime,
    TimeSpan ResultLifetime,
    int WriteTolerance)
{
    /// <summary>Where to POST request and decision events, if anywhere.</summary>
    public WebhookSettings? Webhook { get; init; }

    /// <summary>Groups whose members may decide (known from an admin API token's groups claim).</summary>
    public IReadOnlyList<string> ApproverGroups { get; init; } = [];

    /// <summary>
    /// Null when <paramref name="person"/> (with <paramref name="groups"/>) may decide requests; otherwise why not. With no
    /// approvers and no approver groups named, anyone may (but never the requester, checked per request).
    /// </summary>
    public string? RefuseApprover(string person, IReadOnlyList<string> groups) =>
        (Approvers.Count == 0 && ApproverGroups.Count == 0) || Approvers.Contains(person) || groups.Any(g => ApproverGroups.Contains(g))
            ? null
            : $"'{person}' is not one of this gateway's approvers ({string.Join(", ", Approvers.Concat(ApproverGroups.Select(g => $"group {g}")))})";

    /// <summary>The longest time-boxed grant request_access may ask for.</summary>
    public TimeSpan MaxGrant { get; init; } = TimeSpan.FromHours(24);

    /// <summary>An OpenAI-compatible model that summarizes each statement request for its approvers, if any.</summary>
    public ReviewerSettings? Reviewer { get; init; }

    public static ApprovalSettings Default { get; } = new([], 1, TimeSpan.FromSeconds(45), TimeSpan.FromHours(1), TimeSpan.FromMinutes(15), TimeSpan.FromHours(1), 0);

    /// <summary>The approver name that stands for the human operating the agent's MCP client, asked through elicitation.</summary>
    public const string Operator = "operator";

    /// <summary>Whether the agent's own operator may approve (listed as <c>operator</c> among the approvers).</summary>
    public bool OperatorMayApprove => Approvers.Contains(Operator);

    /// <summary>
    /// How many approvals an access request needs: <see cref="Required"/>, but no more than the named approvers who can decide
    /// one. The operator approves statements only (asked through the client while its call waits), so with operator among
    /// the approvers and no approver groups, <c>approvers: [alice, operator]</c> and <c>required: 2</c> would leave every
    /// access request waiting for a second approval nobody can give.
    /// </summary>
    public int RequiredForAccess => OperatorMayApprove && ApproverGroups.Count == 0 ? Math.Clamp(Approvers.Count - 1, 1, Required) : Required;

    /// <summary>
    /// <see cref="RefuseApprover"/> for an access request. The operator is asked about statements only, through the agent's
    /// client: not counted for an access request, its name decides none (else one more approver than
    /// <see cref="RequiredForAccess"/> counts on could be typed in with <c>--as operator</c>).
    /// </summary>
    public string? RefuseAccessApprover(string person, IReadOnlyList<string> groups) =>
        RefuseApprover(person, groups)
        ?? (OperatorMayApprove && person == Operator ? $"'{Operator}' approves statements only, through the agent's client; an access request is decided by the other approvers" : null);

    /// <summary>With operator the only approver named and no approver groups, nobody may decide an access request.</summary>
    public bool NoAccessApprover => OperatorMayApprove && ApproverGroups.Count == 0 && Approvers.Count == 1;
}

/// <summary>An outgoing webhook; with a secret, each body is signed (X-Gatehouse-Signature: sha256=HMAC of the body).</summary>
public sealed record WebhookSettings(Uri Url, SecretSource Secret);

/// <summary>The AI reviewer: an OpenAI-compatible chat endpoint, a model, and where its API key comes from (if it needs one).</summary>
public sealed record ReviewerSettings(Uri Endpoint, string Model, SecretSource ApiKey, TimeSpan Timeout);
