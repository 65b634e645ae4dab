using System.Collections.Concurrent;
using System.Security.Cryptography;
using Gatehouse.Enforcement.Identity;

namespace Gatehouse.McpServer.Admin;

/// <summary>A signed-in console user: the verified admin identity, until when, and the token its page must echo on every action.</summary>
public sealed record ConsoleSession(AgentIdentity Admin, DateTimeOffset ExpiresAt, string Csrf)
{
    /// <summary>
    /// The admin token the session was opened with, verified again on every admin API request as a Bearer token is: a key
    /// withdrawn or rotated out, or a revocation, ends the session. Held in this process only.
    /// </summary>
    internal string SignInToken { get; init; } = "";
}

/// <summary>
/// Web console sign-ins, held in this process only: the browser keeps an opaque random id in an HttpOnly, SameSite=Strict
/// cookie, never the admin token. A session ends when its token would have expired, after at most <see cref="MaxLifetime"/>,
/// at sign-out, or as soon as its token no longer verifies on an admin API request. Behind a load balancer, sign-ins need session affinity (or a fresh sign-in per instance).
/// </summary>
public sealed class ConsoleSessions(TimeProvider time)
{
    public const string Cookie = "gatehouse_admin";

    public static readonly TimeSpan MaxLifetime = TimeSpan.FromHours(8);

    private readonly ConcurrentDictionary<string, ConsoleSession> _sessions = new(StringComparer.Ordinal);

    public (string Id, ConsoleSession Session) Open(AgentIdentity admin, string signInToken)
    {
        var now = time.GetUtcNow();
        var expires = admin.ExpiresAt < now + MaxLifetime ? admin.ExpiresAt : now + MaxLifetime;
        var session = new ConsoleSession(admin, expires, RandomToken()) { SignInToken = signInToken };
        var id = RandomToken();
        _sessions[id] = session;
        foreach (var (stale, _) in _sessions.Where(s => s.Value.ExpiresAt <= now))
        {
            _sessions.TryRemove(stale, out _);
        }

        return (id, session);
    }

    public ConsoleSession? Find(string? id)
    {
        if (id is null || !_sessions.TryGetValue(id, out var session))
        {
            return null;
        }

        if (session.ExpiresAt > time.GetUtcNow())
        {
            return session;
        }

        _sessions.TryRemove(id, out _);
        return null;
    }

    public void Close(string? id)
    {
        if (id is not null)
        {
            _sessions.TryRemove(id, out _);
        }
    }

    /// <summary>Compares a presented CSRF token with the session's without leaking where they differ.</summary>
    public static bool CsrfMatches(ConsoleSession session, string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(presented), System.Text.Encoding.UTF8.GetBytes(session.Csrf));

    private static string RandomToken() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
