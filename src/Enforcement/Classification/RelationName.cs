namespace Gatehouse.Enforcement.Classification;

/// <summary>A schema-qualified relation name, compared case-sensitively as PostgreSQL stores it.</summary>
public readonly record struct RelationName(string Schema, string Name)
{
    /// <summary>Parses <c>schema.table</c> or <c>table</c> (schema <c>public</c>).</summary>
    public static bool TryParse(string text, out RelationName relation)
    {
        relation = default;
        var parts = text.Split('.');
        if (parts.Length is < 1 or > 2 || parts.Any(string.IsNullOrWhiteSpace))
        {
            return false;
        }

        relation = parts.Length == 1 ? new RelationName("public", parts[0]) : new RelationName(parts[0], parts[1]);
        return true;
    }

    public override string ToString() => $"{Schema}.{Name}";
}
