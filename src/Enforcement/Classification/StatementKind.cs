namespace Gatehouse.Enforcement.Classification;

/// <summary>What kind of statement the text is, judged from its keywords.</summary>
public enum StatementKind
{
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Ddl,
    Dcl,
    Transaction,
    Session,
    Copy,
    Do,
    Call,
    Explain,
    Prepared,
    Notify,
    Lock,
    Maintenance,
    Unknown,
}

/// <summary>Names and groupings of <see cref="StatementKind"/>.</summary>
public static class StatementKinds
{
    public static bool IsDml(this StatementKind kind) =>
        kind is StatementKind.Insert or StatementKind.Update or StatementKind.Delete or StatementKind.Merge;

    /// <summary>Kinds whose effect PostgreSQL can describe with EXPLAIN.</summary>
    public static bool IsExplainable(this StatementKind kind) => kind == StatementKind.Select || kind.IsDml();

    public static string Name(this StatementKind kind) => kind.ToString().ToLowerInvariant();
}
