using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Admin;

/// <summary>How requests look to approvers, in the CLI's --json output and the admin API alike.</summary>
public static class RequestViews
{
    public static object Access(AccessRequest r) => new
    {
        r.Id,
        Kind = "access",
        r.Agent,
        r.DelegatedBy,
        r.Connection,
        Tables = r.Tables.Select(t => t.ToString()),
        r.Schemas,
        Access = r.AccessText,
        r.Reason,
        Duration = Durations.Format(r.Duration),
        r.Status,
        r.CreatedAt,
        ExpiresAt = r.Status == AccessRequestStatus.Pending ? r.UndecidedExpiry : (DateTimeOffset?)null,
        r.DecidedAt,
        r.DecidedBy,
        r.DecisionNote,
        r.GrantExpiresAt,
        r.Approvals,
        r.Required,
        Decisions = r.Votes,
    };

    public static object Statement(StatementApproval s) => new
    {
        s.Id,
        Kind = "statement",
        s.Agent,
        s.DelegatedBy,
        s.Connection,
        s.Sql,
        s.Parameters,
        s.Classification,
        s.Rule,
        s.Reason,
        s.Status,
        Approvals = s.Approvals,
        s.Required,
        s.DryRunRows,
        DryRunSample = s.DryRunSample is null ? null : Sample(QueryResultCodec.Read(s.DryRunSample)),
        s.Review,
        s.CreatedAt,
        s.ExpiresAt,
        Decisions = s.Votes,
    };

    // Column names and rows of a dry run's sample, as an approver reads them.
    private static object Sample(QueryResult result) => new
    {
        Columns = result.Columns.Select(c => c.Name),
        result.Rows,
    };
}
