namespace Gatehouse.Enforcement.Execution;

/// <summary>Why a database call did not succeed, in words safe to show an agent (never a credential).</summary>
public enum DatabaseFailure
{
    /// <summary>The database could not be reached or the connection broke.</summary>
    Unavailable,

    /// <summary>PostgreSQL refused the statement (syntax, permissions, constraint...).</summary>
    Rejected,

    /// <summary>The statement ran past its timeout and was cancelled.</summary>
    Timeout,

    /// <summary>PostgreSQL's own privileges refused the gateway's credential: the floor under the policy held.</summary>
    PermissionDenied,

    /// <summary>The caller's strict-mode masking profile does not exist in the database: setup has not run for these rights.</summary>
    ProfileMissing,

    /// <summary>The connection broke while a write was committing: PostgreSQL may or may not have applied it.</summary>
    CommitInDoubt,
}

/// <summary>A failure talking to a target database, carrying PostgreSQL's SQLSTATE where there is one.</summary>
public sealed class DatabaseException(DatabaseFailure failure, string message, string? sqlState = null, Exception? inner = null)
    : Exception(message, inner)
{
    public DatabaseFailure Failure { get; } = failure;

    public string? SqlState { get; } = sqlState;
}
