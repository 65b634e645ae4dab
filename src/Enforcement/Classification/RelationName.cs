namespace Gatehouse.Enforcement.Classification;

/// <summary>A schema-qualified relation name, compared case-sensitively as PostgreSQL stores it.</summary>
public readonly record struct RelationName(string Schema, string Name)
{
    /// <summary>How to write a name where one is expected, for error messages.</summary>
    public const string Spelling = "names are written as PostgreSQL stores them: case-sensitive, without double quotes (public.Orders, not public.\"Orders\")";

    /// <summary>
    /// Parses <c>schema.table</c> or <c>table</c> (schema <c>public</c>). A double quote is refused rather than read as SQL
    /// quoting: the name is compared as written, so <c>"Orders"</c> would name no table and match nothing.
    /// </summary>
    public static bool TryParse(string text, out RelationName relation) =>
        TryParse(text, allowQuotes: false, out relation);

    /// <summary>
    /// A name the gateway stored itself (an access request's tables), read back as it was written: one stored before
    /// quotes were refused still reads, so the request can be listed, shown and expire.
    /// </summary>
    public static RelationName FromStored(string text) =>
        TryParse(text, allowQuotes: true, out var relation) ? relation : throw new InvalidDataException($"Stored table name '{text}' is invalid.");

    private static bool TryParse(string text, bool allowQuotes, out RelationName relation)
    {
        relation = default;
        var parts = text.Split('.');
        if (parts.Length is < 1 or > 2 || parts.Any(string.IsNullOrWhiteSpace) || (!allowQuotes && text.Contains('"', StringComparison.Ordinal)))
        {
            return false;
        }

        relation = parts.Length == 1 ? new RelationName("public", parts[0]) : new RelationName(parts[0], parts[1]);
        return true;
    }

    public override string ToString() => $"{Schema}.{Name}";
}
