namespace Gatehouse.Enforcement.Execution;

/// <summary>
/// The PostgreSQL role a statement and its EXPLAIN run as (<c>SET LOCAL ROLE</c>): a strict-masking profile, whose schema of
/// masked views is also the search_path, or a role the connection maps to one of the caller's groups.
/// </summary>
public sealed record SessionRole(string Role, string? Schema)
{
    public static SessionRole Profile(string name) => new(name, name);

    public static SessionRole Mapped(string role) => new(role, null);

    /// <summary>Plans are cached apart per role: each resolves names, and may see rows, its own way.</summary>
    public string CacheScope => Schema is null ? "role:" + Role : Role;
}
