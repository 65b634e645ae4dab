using System.Globalization;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Admin;

public static partial class AdminApi
{
    private const int PageSize = 50;

    private static void MapAudit(RouteGroupBuilder api)
    {
        api.MapGet("/agents", (HttpContext context, AdminGate gate, GatewayState state, LivePolicy live) =>
            gate.RunAsync(context, async _ =>
            {
                var policy = live.Current;
                var known = await state.AgentsAsync(context.RequestAborted);
                // Agents named in the policy show up before their first call, so they can be disabled ahead of time.
                var configured = policy.Agents.Keys.Where(a => known.All(k => k.Agent != a)).Select(a => new AgentStatus(a, false, null, 0, 0));
                return Json(known.Concat(configured).OrderBy(a => a.Agent, StringComparer.Ordinal)
                    .Select(a => new { a.Agent, a.Disabled, a.FirstSeen, a.LastSeen, a.Calls, a.Denials, a.Issuers, Configured = policy.Agents.ContainsKey(a.Agent) }));
            }));
        // The name goes in the query string, not the path: a path keeps an encoded '/' encoded, so an agent named like a
        // SPIFFE id (spiffe://corp/ns/etl) was switched off under a name no token carries, and reported done.
        api.MapPost("/agents/disable", (HttpContext context, AdminGate gate, AgentSwitchboard switchboard, string? agent) =>
            gate.RunAsync(context, async admin => string.IsNullOrEmpty(agent)
                ? Problem(StatusCodes.Status400BadRequest, "name the agent: POST /admin/api/agents/disable?agent=NAME")
                : !AgentKeys.IsKey(agent) && AgentSwitchboard.RefuseDisabling(agent) is { } refused
                ? await RefusedAsync(gate, context, admin, "agent.refused", refused)
                : Json(new { result = await switchboard.SetAsync(agent, true, admin.Agent, ChannelOf(context), context.RequestAborted) })));
        api.MapPost("/agents/enable", (HttpContext context, AdminGate gate, AgentSwitchboard switchboard, string? agent) =>
            gate.RunAsync(context, async admin => string.IsNullOrEmpty(agent)
                ? Problem(StatusCodes.Status400BadRequest, "name the agent: POST /admin/api/agents/enable?agent=NAME")
                : Json(new { result = await switchboard.SetAsync(agent, false, admin.Agent, ChannelOf(context), context.RequestAborted) })));
        api.MapGet("/connections", (HttpContext context, AdminGate gate, LivePolicy live) =>
            gate.RunAsync(context, _ => Task.FromResult(Json(live.Current.Connections.Keys.Order(StringComparer.Ordinal)))));
        api.MapGet("/calls", (HttpContext context, AdminGate gate, IAuditLog audit) =>
            gate.RunAsync(context, async _ =>
            {
                var (query, problem) = ReadCallQuery(context.Request.Query);
                if (query is null)
                {
                    return Problem(StatusCodes.Status400BadRequest, problem!);
                }

                var page = await audit.ListAsync(query with { Limit = query.Limit + 1 }, context.RequestAborted);
                return Json(new { Calls = page.Take(query.Limit).Select(CallSummary), query.Offset, query.Limit, HasMore = page.Count > query.Limit });
            }));
        api.MapGet("/calls/{id}", (HttpContext context, AdminGate gate, IAuditLog audit, Connectors.State.SqlStateStore state, string id) =>
            gate.RunAsync(context, async _ =>
            {
                if (await audit.GetAsync(id, context.RequestAborted) is not { } record)
                {
                    return Problem(StatusCodes.Status404NotFound, $"no call with id '{id}'");
                }

                // Statement approvals this call asked for: same agent, connection and text, among that agent's own requests
                // (the newest thousand of every agent's could hide them).
                var approvals = record is not { Sql: not null, Agent: { } agent }
                    ? []
                    : (await state.ListStatementsOfAgentAsync(agent, 1000, DateTimeOffset.UtcNow, context.RequestAborted))
                        .Where(s => s.Connection == record.Connection && s.Sql == record.Sql)
                        .Select(RequestViews.Statement)
                        .ToList();
                return Json(new { Call = record, Approvals = approvals });
            }));
        api.MapGet("/sessions", (HttpContext context, AdminGate gate, IAuditLog audit, string? agent) =>
            gate.RunAsync(context, async _ => Json(await audit.SessionsAsync(string.IsNullOrWhiteSpace(agent) ? null : agent, 200, context.RequestAborted))));
        api.MapGet("/sessions/{id}", (HttpContext context, AdminGate gate, IAuditLog audit, string id) =>
            gate.RunAsync(context, async _ =>
            {
                var calls = await audit.SessionAsync(id, context.RequestAborted);
                return calls.Count == 0 ? Problem(StatusCodes.Status404NotFound, $"no session '{id}'") : Json(calls.Select(CallSummary));
            }));
    }

    private static object CallSummary(AuditRecord r) => new
    {
        r.Id,
        r.Time,
        r.Tool,
        r.Transport,
        r.SessionId,
        r.Agent,
        r.Connection,
        r.Sql,
        r.Classification,
        r.Decision,
        r.Rule,
        r.Reason,
        r.RowCount,
        r.DurationMs,
        r.Masking,
    };

    /// <summary>The log's filters from a query string; a value that cannot be read is a problem, never silently ignored.</summary>
    private static (AuditQuery? Query, string? Problem) ReadCallQuery(IQueryCollection q)
    {
        Verdict? decision = null;
        if (q["decision"].ToString() is { Length: > 0 } d)
        {
            if (!Enum.TryParse<Verdict>(d, ignoreCase: true, out var v) || !Enum.IsDefined(v))
            {
                return (null, $"decision must be allowed, denied, failed or started (got '{Clip(d)}')");
            }

            decision = v;
        }

        var times = new DateTimeOffset?[2];
        string[] names = ["since", "until"];
        for (var i = 0; i < 2; i++)
        {
            if (q[names[i]].ToString() is { Length: > 0 } t)
            {
                if (!DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
                {
                    return (null, $"{names[i]} must be an ISO 8601 time such as 2026-12-01T09:00:00Z (got '{Clip(t)}')");
                }

                times[i] = time;
            }
        }

        var offset = int.TryParse(q["offset"], out var o) ? Math.Max(0, o) : 0;
        var limit = int.TryParse(q["limit"], out var l) ? Math.Clamp(l, 1, 500) : PageSize;
        return (new AuditQuery(Text(q, "agent"), times[0], decision, limit, times[1], Text(q, "connection"), Text(q, "table"), Text(q, "text"), offset, Text(q, "tool")), null);
    }

    private static string? Text(IQueryCollection q, string key) => q[key].ToString() is { Length: > 0 } value ? value[..Math.Min(value.Length, 500)] : null;

    private static string Clip(string text) => text.Length <= 60 ? text : text[..60] + "…";
}
