namespace Gatehouse.Enforcement.Audit;

/// <summary>The verdict recorded for a call.</summary>
public enum Verdict
{
    /// <summary>Recorded before the decision; a record left in this state means the call never finished.</summary>
    Started,
    Allowed,
    Denied,
    Failed,
}

/// <summary>One tool call as recorded: who, what, the decision and its rule, and how it ended. Never holds a token or credential.</summary>
public sealed record AuditRecord
{
    public required string Id { get; init; }

    public required DateTimeOffset Time { get; init; }

    public required string Tool { get; init; }

    public required string Transport { get; init; }

    public string? SessionId { get; init; }

    public string? Agent { get; init; }

    public IReadOnlyList<string> Groups { get; init; } = [];

    public string? Issuer { get; init; }

    public string? Subject { get; init; }

    public string? TokenId { get; init; }

    /// <summary>The OAuth client the token was issued to.</summary>
    public string? ClientId { get; init; }

    /// <summary>The human the agent acted for, when the token says one delegated.</summary>
    public string? DelegatedBy { get; init; }

    public string? Connection { get; init; }

    public string? Sql { get; init; }

    /// <summary>The positional parameters as a JSON array, when the call had any.</summary>
    public string? Parameters { get; init; }

    /// <summary>Statement kind and the relations the plan touches, e.g. "select: public.orders(read)".</summary>
    public string? Classification { get; init; }

    public Verdict Decision { get; init; } = Verdict.Started;

    public string Rule { get; init; } = "";

    public string Reason { get; init; } = "";

    public long? RowCount { get; init; }

    public double DurationMs { get; init; }

    public string? Error { get; init; }

    /// <summary>What the detectors masked in what the agent received, e.g. "email:3, card:1".</summary>
    public string? Masking { get; init; }

    /// <summary>With capture level <c>full</c>: the result as the agent received it (already masked), cut to a size bound.</summary>
    public string? Result { get; init; }

    /// <summary>A new, time-ordered record id.</summary>
    public static string NewId() => "aud_" + Guid.CreateVersion7().ToString("N");

    /// <summary>
    /// The record as a text column holds it: PostgreSQL refuses NUL in text, and Npgsql refuses half a surrogate pair (no
    /// UTF-8 can hold one), so each is stored as U+FFFD. A caller's text (its SQL, a connection name, a token's issuer)
    /// holding one, or cut short in the middle of an emoji, made the record fail, and the attempt left none.
    /// </summary>
    public AuditRecord Storable()
    {
        // Checked field by field: every call's records pass here twice, and nearly none needs it.
        if (!(Unstorable(Id) || Unstorable(Tool) || Unstorable(Transport) || Unstorable(SessionId) || Unstorable(Agent) || Unstorable(Issuer)
            || Unstorable(Subject) || Unstorable(TokenId) || Unstorable(ClientId) || Unstorable(DelegatedBy) || Unstorable(Connection) || Unstorable(Sql)
            || Unstorable(Parameters) || Unstorable(Classification) || Unstorable(Rule) || Unstorable(Reason) || Unstorable(Error) || Unstorable(Masking)
            || Unstorable(Result) || Groups.Any(Unstorable)))
        {
            return this;
        }

        return this with
        {
            Id = Clean(Id)!,
            Tool = Clean(Tool)!,
            Transport = Clean(Transport)!,
            SessionId = Clean(SessionId),
            Agent = Clean(Agent),
            Groups = [.. Groups.Select(g => Clean(g)!)],
            Issuer = Clean(Issuer),
            Subject = Clean(Subject),
            TokenId = Clean(TokenId),
            ClientId = Clean(ClientId),
            DelegatedBy = Clean(DelegatedBy),
            Connection = Clean(Connection),
            Sql = Clean(Sql),
            Parameters = Clean(Parameters),
            Classification = Clean(Classification),
            Rule = Clean(Rule)!,
            Reason = Clean(Reason)!,
            Error = Clean(Error),
            Masking = Clean(Masking),
            Result = Clean(Result),
        };
    }

    private static bool Unstorable(string? text) =>
        text is not null && (text.Contains('\0', StringComparison.Ordinal) || LoneSurrogateAt(text, text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF')) >= 0);

    // The first half of a surrogate pair without its other half at or after start (-1 for none).
    private static int LoneSurrogateAt(string text, int start)
    {
        for (var i = Math.Max(start, 0); start >= 0 && i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return i;
            }
        }

        return -1;
    }

    private static string? Clean(string? text)
    {
        if (!Unstorable(text))
        {
            return text;
        }

        var chars = text!.Replace('\0', '\uFFFD').ToCharArray();
        for (var i = LoneSurrogateAt(text, 0); i >= 0; i = LoneSurrogateAt(text, i + 1))
        {
            chars[i] = '\uFFFD';
        }

        return new string(chars);
    }
}

/// <summary>A session at a glance: its agent, first and last call, and how many calls were made, refused and failed.</summary>
public sealed record SessionSummary(string SessionId, string? Agent, DateTimeOffset First, DateTimeOffset Last, int Calls, int Denied, int Failed);

/// <summary>An agent's activity in the audit log: first and last call, how many calls and how many refused.</summary>
/// <param name="Issuers">The token issuers its calls came with: where its identity comes from.</param>
public sealed record AgentActivity(string Agent, DateTimeOffset FirstSeen, DateTimeOffset LastSeen, long Calls, long Denials, IReadOnlyList<string> Issuers);
