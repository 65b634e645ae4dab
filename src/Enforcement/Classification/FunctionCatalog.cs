namespace Gatehouse.Enforcement.Classification;

/// <summary>How a function may behave, as pg_proc.provolatile says.</summary>
public enum Volatility
{
    Immutable,
    Stable,
    Volatile,
}

/// <summary>One function from pg_proc: where it lives, its volatility, and whether it runs with its owner's rights.</summary>
public sealed record FunctionInfo(string Schema, string Name, Volatility Volatility, bool SecurityDefiner, string Language)
{
    /// <summary>pg_proc's oid, as parse trees name it.</summary>
    public uint Oid { get; init; }
}

/// <summary>An operator (by its pg_operator oid) and the function behind it, e.g. <c>public.###</c> calling <c>public.peek</c>.</summary>
public sealed record OperatorInfo(uint Oid, string Schema, string Symbol, FunctionInfo Function);

/// <summary>
/// The functions a database defines, looked up by name as plans print them or by oid as parse trees do, and the operators
/// that are not built-ins: defined outside pg_catalog, or over a function that is not a plain built-in.
/// </summary>
public sealed class FunctionCatalog(IReadOnlyCollection<FunctionInfo> functions, IEnumerable<OperatorInfo>? operators = null)
{
    private readonly ILookup<string, FunctionInfo> _byName = functions.ToLookup(f => f.Name, StringComparer.Ordinal);
    private readonly Dictionary<uint, FunctionInfo> _byOid = functions.Where(f => f.Oid != 0).ToDictionary(f => f.Oid);
    private readonly Dictionary<uint, OperatorInfo> _operators = (operators ?? []).ToDictionary(o => o.Oid);

    public static FunctionCatalog Empty { get; } = new([]);

    /// <summary>The function with this oid, or null when the catalog was read before it was created.</summary>
    public FunctionInfo? Function(uint oid) => _byOid.GetValueOrDefault(oid);

    /// <summary>The operator with this oid when it is not a built-in; null for a built-in's (or one unknown here).</summary>
    public OperatorInfo? Operator(uint oid) => _operators.GetValueOrDefault(oid);

    /// <summary>Candidates for a called name: an exact schema when the plan qualified it, otherwise every schema's.</summary>
    public IReadOnlyList<FunctionInfo> Find(FunctionCall call) =>
        _byName[call.Name].Where(f => call.Schema is null || f.Schema == call.Schema).ToList();
}

/// <summary>A function call found in a plan expression, e.g. <c>pg_catalog.pg_read_file(...)</c>.</summary>
public readonly record struct FunctionCall(string? Schema, string Name)
{
    /// <summary>
    /// Printed as PostgreSQL prints a keyword: unqualified, unquoted and in capitals (<c>XMLTABLE(</c>, <c>COALESCE(</c>). A
    /// function's name never prints so: an unquoted name is folded to lower case, and one that needs capitals is quoted.
    /// </summary>
    public bool Keyword { get; init; }

    public override string ToString() => Schema is null ? Name : $"{Schema}.{Name}";
}

/// <summary>Reads the function catalog of a target database; implemented at the edge.</summary>
public interface IFunctionCatalogSource
{
    /// <summary>The catalog, cached; <paramref name="refresh"/> re-reads it (when a plan names a function the cache lacks).</summary>
    ValueTask<FunctionCatalog> GetAsync(string connection, bool refresh, CancellationToken cancellationToken);
}
