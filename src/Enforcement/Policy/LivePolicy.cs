using System.Text.Json;

namespace Gatehouse.Enforcement.Policy;

/// <summary>
/// The policy in force. A reload replaces it whole; each call reads it once when it starts and keeps that version to its
/// end, so no call ever mixes two versions.
/// </summary>
public sealed class LivePolicy(GatewayPolicy initial)
{
    private readonly Lock _gate = new();
    private GatewayPolicy _current = initial;

    public GatewayPolicy Current => Volatile.Read(ref _current);

    /// <summary>
    /// Puts <paramref name="next"/> in force, unless it changes settings a running gateway cannot take up (see
    /// <see cref="NeedingRestart"/>): then nothing changes and those settings are returned.
    /// </summary>
    public IReadOnlyList<string> TryReplace(GatewayPolicy next)
    {
        lock (_gate)
        {
            var bound = NeedingRestart(_current, next);
            if (bound.Count == 0)
            {
                Volatile.Write(ref _current, next);
            }

            return bound;
        }
    }

    /// <summary>
    /// The settings that differ between two policies and are bound when the gateway starts: where state lives, the HTTP
    /// surface, telemetry, the audit sink and the shutdown deadline, trusted issuers and admins, the approval webhook and reviewer, and each
    /// connection's name, address, login, password source, TLS and search_path (cached plans resolved names with it).
    /// Everything else (agents, groups, grants, guardrails, tags, masking, limits, quotas, approval rules, tool scopes)
    /// takes effect on the next call.
    /// </summary>
    public static IReadOnlyList<string> NeedingRestart(GatewayPolicy current, GatewayPolicy next)
    {
        var changed = new List<string>();
        Compare("gateway.state", p => p.Gateway.StatePath);
        Compare("gateway.store", p => p.Gateway.Store);
        Compare("gateway.http", p => p.Gateway.Http);
        Compare("gateway.telemetry", p => p.Gateway.Telemetry);
        Compare("gateway.audit", p => p.Gateway.Audit);
        Compare("gateway.shutdown_deadline", p => p.Gateway.ShutdownDeadline);
        Compare("issuers", p => p.Issuers);
        Compare("admin", p => p.Admin);
        Compare("approvals.webhook", p => p.Approvals.Webhook);
        Compare("approvals.reviewer", p => p.Approvals.Reviewer);
        foreach (var name in current.Connections.Keys.Union(next.Connections.Keys).Order(StringComparer.Ordinal))
        {
            Compare($"connections.{name} (its address, login, password source, TLS or search_path; or the connection was added or removed)", p =>
                p.Connections.TryGetValue(name, out var c) ? new { c.ConnectionString, c.Password, c.LoginRole, c.Tls, c.SearchPath } : null);
        }

        return changed;

        // Settings are plain records of strings, numbers and lists: their JSON says whether they are the same.
        void Compare(string name, Func<GatewayPolicy, object?> part)
        {
            if (JsonSerializer.Serialize(part(current)) != JsonSerializer.Serialize(part(next)))
            {
                changed.Add(name);
            }
        }
    }
}
