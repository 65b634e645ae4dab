namespace Gatehouse.Enforcement.Policy;

/// <summary>What a grant lets an identity do with the relations it names.</summary>
public enum AccessLevel
{
    /// <summary>SELECT only, in a read-only transaction.</summary>
    Read,

    /// <summary>INSERT, UPDATE, DELETE and MERGE; includes read.</summary>
    Write,
}

/// <summary>Parsing and display of <see cref="AccessLevel"/> as the policy file spells it.</summary>
public static class AccessLevels
{
    public static bool TryParse(string? text, out AccessLevel access)
    {
        switch (text)
        {
            case "read":
                access = AccessLevel.Read;
                return true;
            case "write":
                access = AccessLevel.Write;
                return true;
            default:
                access = default;
                return false;
        }
    }

    public static string ToPolicyString(this AccessLevel access) => access == AccessLevel.Write ? "write" : "read";
}
