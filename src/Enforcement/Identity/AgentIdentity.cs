using System.Globalization;

namespace Gatehouse.Enforcement.Identity;

/// <summary>A verified caller: the agent a token names, its groups, and where the token came from.</summary>
public sealed record AgentIdentity(
    string Agent,
    IReadOnlyList<string> Groups,
    string Issuer,
    string Subject,
    string? TokenId,
    DateTimeOffset ExpiresAt)
{
    /// <summary>The OAuth client the token was issued to (<c>azp</c> or <c>client_id</c>), when the token says.</summary>
    public string? ClientId { get; init; }

    /// <summary>The human the agent acts for (RFC 8693 <c>act</c>, or the issuer's delegation claim); null when nobody delegated.</summary>
    public string? DelegatedBy { get; init; }

    /// <summary>The delegating human's groups, when the delegation claim carries them.</summary>
    public IReadOnlyList<string> DelegatorGroups { get; init; } = [];

    /// <summary>The token's scopes (<c>scope</c> or <c>scp</c>).</summary>
    public IReadOnlyList<string> Scopes { get; init; } = [];

    /// <summary>The keys under which an admin may have disabled this caller: its name, subject, client and token id.</summary>
    public IReadOnlyList<string> SwitchKeys =>
        [Agent, AgentKeys.Subject(Subject), .. ClientId is null ? Array.Empty<string>() : [AgentKeys.Client(ClientId)], .. TokenId is null ? Array.Empty<string>() : [AgentKeys.TokenId(TokenId)]];
}

/// <summary>How the agent directory names what it switches off besides agent names: a subject, a client id, a token id.</summary>
public static class AgentKeys
{
    public static string Subject(string subject) => "sub:" + subject;

    public static string Client(string clientId) => "client:" + clientId;

    public static string TokenId(string jti) => "jti:" + jti;

    /// <summary>
    /// The longest name accepted, in UTF-8 bytes: a SPIFFE id may be 2,048, and PostgreSQL indexes (the audit log's by agent)
    /// take no entry much longer.
    /// </summary>
    public const int MaxNameBytes = 2048;

    /// <summary>
    /// Why <paramref name="name"/> cannot name an agent or a group, or null when it can. They are told apart, disabled and
    /// reviewed by name, so a name must not look like another: no spaces at its edges, and no control, line-break or
    /// invisible formatting characters ("analyst" and "analyst" + U+200B would read the same in the log and the console).
    /// Zero-width joiners between the characters of scripts that join with them are writing, not disguise (Persian and Indic
    /// words, emoji sequences); between Latin or Cyrillic letters they are disguise.
    /// </summary>
    public static string? NameProblem(string name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return "is empty";
        }

        if (System.Text.Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
        {
            return $"is longer than {MaxNameBytes:N0} bytes";
        }

        if (char.IsWhiteSpace(name[0]) || char.IsWhiteSpace(name[^1]))
        {
            return "has spaces at its start or end, so it would read as another name";
        }

        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            var hidden = char.IsControl(c) || CharUnicodeInfo.GetUnicodeCategory(name, i) is UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                || Blank(name, i);
            var joins = c is '\u200C' or '\u200D' && i > 0 && i < name.Length - 1 && JoinsWith(name[i - 1]) && JoinsWith(name[i + 1]);
            // An emoji's presentation selector, after the emoji (after anything else it shows as nothing).
            var selects = c is '\uFE0E' or '\uFE0F' && i > 0 && Emoji(name, i - 1);
            if (hidden && !joins && !selects)
            {
                return "holds control or invisible characters, so it would read as another name";
            }

            if (char.GetUnicodeCategory(c) == UnicodeCategory.SpaceSeparator && (c != ' ' || name[i - 1] == ' '))
            {
                return "holds a space other than one plain space between words, so it would read as another name";
            }
        }

        return null;
    }

    // Whether the character ending at i is one a presentation selector may follow: an emoji beyond the first plane, or a
    // symbol in the blocks of emoji-capable arrows, technical signs, geometric shapes, dingbats and miscellaneous symbols.
    private static bool Emoji(string name, int i) =>
        char.IsLowSurrogate(name[i]) && i > 0 && char.IsHighSurrogate(name[i - 1]) && char.ConvertToUtf32(name[i - 1], name[i]) >= 0x1F000
        || name[i] is >= '\u2190' and <= '\u21FF' or >= '\u2300' and <= '\u23FF' or >= '\u25A0' and <= '\u27BF' or >= '\u2900' and <= '\u297F'
            or >= '\u2B00' and <= '\u2BFF' or '\u00A9' or '\u00AE' or '\u203C' or '\u2049' or '\u2122' or '\u2139' or '\u24C2' or '\u3030' or '\u303D' or '\u3297' or '\u3299';

    // Characters that show as nothing, or as a blank, though Unicode files them as marks or letters: the combining grapheme
    // joiner, Hangul fillers, Khmer inherent vowels, Mongolian variation selectors, variation selectors (both planes), the
    // braille blank and tag characters.
    private static bool Blank(string name, int i) => name[i] switch
    {
        '\u034F' or '\u115F' or '\u1160' or '\u17B4' or '\u17B5' or '\u3164' or '\uFFA0' or '\u2800' => true,
        >= '\u180B' and <= '\u180F' => true,
        >= '\uFE00' and <= '\uFE0F' => true,
        '\uDB40' => i + 1 < name.Length && name[i + 1] is >= '\uDC00' and <= '\uDDEF',
        _ => false,
    };

    // Arabic-script (Persian, Urdu) and Indic letters, and the parts of an emoji (its surrogate halves, its variation
    // selector), which zero-width joiners join.
    private static bool JoinsWith(char c) =>
        c is >= '\u0600' and <= '\u06FF' or >= '\u0750' and <= '\u077F' or >= '\u08A0' and <= '\u08FF' or >= '\uFB50' and <= '\uFDFF'
            or >= '\uFE70' and <= '\uFEFF' or >= '\u0900' and <= '\u0DFF' or >= '\u2600' and <= '\u27BF' or '\uFE0F' || char.IsSurrogate(c);

    /// <summary>
    /// Why <paramref name="name"/> cannot name an agent, or null when it can: besides what <see cref="NameProblem"/> refuses,
    /// a name that begins like a subject, client or token key would share its switch (an agent named "sub:alice" disabled
    /// would lock out every token with alice's subject).
    /// </summary>
    public static string? AgentNameProblem(string name) =>
        IsKey(name) ? "begins like a subject, client or token switch (sub:, client:, jti:), so disabling it would switch off those instead" : NameProblem(name);

    /// <summary>Whether <paramref name="key"/> is a subject, client or token key rather than an agent name.</summary>
    public static bool IsKey(string key) =>
        key.StartsWith("sub:", StringComparison.Ordinal) || key.StartsWith("client:", StringComparison.Ordinal) || key.StartsWith("jti:", StringComparison.Ordinal);

    /// <summary>A key in words: "agent 'x'", "subject 'x'", "client 'x'" or "token 'x'".</summary>
    public static string Describe(string key) => key.Split(':', 2) switch
    {
        ["sub", var subject] => $"subject '{subject}'",
        ["client", var client] => $"client '{client}'",
        ["jti", var jti] => $"token '{jti}'",
        _ => $"agent '{key}'",
    };
}

/// <summary>The outcome of verifying a token: an identity, or the rule that refused it and why.</summary>
public sealed record IdentityResult(AgentIdentity? Identity, string Rule, string Reason)
{
    /// <summary>Whom a token speaks for when it was verified and refused after (its agent, subject or id disabled): for the record, never for access.</summary>
    public AgentIdentity? RefusedIdentity { get; init; }

    public static IdentityResult Verified(AgentIdentity identity) => new(identity, "identity.verified", "token verified");

    public static IdentityResult Refused(string rule, string reason) => new(null, rule, reason);
}
