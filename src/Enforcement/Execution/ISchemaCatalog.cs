using Gatehouse.Enforcement.Classification;

namespace Gatehouse.Enforcement.Execution;

/// <summary>Reads table and column metadata from a target database.</summary>
public interface ISchemaCatalog
{
    ValueTask<IReadOnlyList<TableDescription>> DescribeAsync(string connection, string? schema, string? table, CancellationToken cancellationToken);
}

/// <summary>A table or view with its columns and keys.</summary>
public sealed record TableDescription(
    RelationName Name,
    string Kind,
    string? Comment,
    IReadOnlyList<ColumnDescription> Columns,
    IReadOnlyList<string> PrimaryKey,
    IReadOnlyList<ForeignKeyDescription> ForeignKeys)
{
    /// <summary>For an inheritance child or partition, the tables it descends from, nearest first; otherwise empty.</summary>
    public IReadOnlyList<RelationName> Ancestors { get; init; } = [];
}

/// <summary>A column's name, type, nullability and comment; the gateway adds its sensitive class and whether the caller sees it masked.</summary>
public sealed record ColumnDescription(string Name, string Type, bool Nullable, string? Comment)
{
    public string? SensitiveClass { get; init; }

    public bool MaskedForCaller { get; init; }

    /// <summary>For a generated column, the columns of its table that its expression reads; otherwise empty.</summary>
    public IReadOnlyList<string> ComputedFrom { get; init; } = [];
}

/// <summary>A foreign key from some columns of one table to another table.</summary>
public sealed record ForeignKeyDescription(IReadOnlyList<string> Columns, RelationName References, IReadOnlyList<string> ReferencedColumns);
