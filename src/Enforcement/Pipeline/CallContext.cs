namespace Gatehouse.Enforcement.Pipeline;

/// <summary>How a tool call arrived: the tool, the caller's raw token (from the transport, never an argument), and the session.</summary>
public sealed record CallContext(string Tool, string? Token, string Transport, string? SessionId)
{
    /// <summary>A stdio server starting with its token (recorded, not a tool call).</summary>
    public const string SessionOpen = "session.open";

    /// <summary>An HTTP request refused before any tool ran.</summary>
    public const string HttpConnect = "http.connect";

    /// <summary>Whether this is a tool call, which quotas count (session openings are not).</summary>
    public bool IsToolCall => Tool is not (SessionOpen or HttpConnect);

    /// <summary>Where to report a call that waits for a human (MCP progress notifications), if the client asked for progress.</summary>
    public IProgress<Approvals.WaitProgress>? Progress { get; init; }

    /// <summary>
    /// Asks the human operating the agent's client (MCP elicitation) to approve a statement; null when the client cannot ask.
    /// The answer is null when the operator declined to answer.
    /// </summary>
    public Func<string, CancellationToken, Task<Approvals.OperatorAnswer?>>? AskOperator { get; init; }
}

/// <summary>What the pipeline hands back to a tool: the audit id, the decision, and the payload when allowed.</summary>
public sealed record CallOutcome(string? AuditId, Decision Decision, object? Payload = null);

/// <summary>Arguments of the <c>query</c> tool.</summary>
public sealed record QueryRequest(string? Connection, string? Sql, IReadOnlyList<string?> Parameters, int? MaxRows);

/// <summary>Arguments of the <c>describe_schema</c> tool.</summary>
public sealed record DescribeSchemaRequest(string? Connection, string? Schema, string? Table);

/// <summary>Arguments of the <c>request_access</c> tool.</summary>
public sealed record AccessRequestInput(string? Connection, IReadOnlyList<string> Tables, string? Access, string? Reason, string? Duration)
{
    /// <summary>Only report the caller's requests; file nothing.</summary>
    public bool StatusOnly { get; init; }

    /// <summary>Whole schemas asked for, besides the tables.</summary>
    public IReadOnlyList<string> Schemas { get; init; } = [];
}
