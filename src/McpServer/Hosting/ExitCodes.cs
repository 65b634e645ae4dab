namespace Gatehouse.McpServer.Hosting;

/// <summary>Process exit codes of the CLI.</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Something failed (bad config, unreachable store, ...).</summary>
    public const int Error = 1;

    /// <summary>The request was understood and refused (bad token, not found, not allowed).</summary>
    public const int Refused = 2;

    /// <summary><c>setup --check</c> found the database out of line with the policy, or <c>audit verify</c> found the log tampered with.</summary>
    public const int Drift = 3;

    /// <summary>Interrupted (Ctrl-C, SIGTERM) before it finished: what it was doing is incomplete (a shell's 128 + SIGINT).</summary>
    public const int Interrupted = 130;
}
