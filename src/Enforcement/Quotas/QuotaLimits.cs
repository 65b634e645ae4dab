namespace Gatehouse.Enforcement.Quotas;

/// <summary>One quota: any limit left null is not enforced. Rows and bytes count what calls returned within <see cref="Window"/>.</summary>
public sealed record QuotaLimits(int? CallsPerMinute, int? ConcurrentCalls, long? RowsPerWindow, long? BytesPerWindow, TimeSpan Window)
{
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromHours(1);
}

/// <summary>
/// The policy's <c>quotas</c>: a default for every agent, per-agent overrides, and per-group budgets that the group's members
/// share. Counted by each gateway instance in memory.
/// </summary>
public sealed record QuotaSettings(QuotaLimits? Default, IReadOnlyDictionary<string, QuotaLimits> Agents, IReadOnlyDictionary<string, QuotaLimits> Groups)
{
    public static QuotaSettings None { get; } = new(null, new Dictionary<string, QuotaLimits>(), new Dictionary<string, QuotaLimits>());

    public bool Any => Default is not null || Agents.Count > 0 || Groups.Count > 0;
}
