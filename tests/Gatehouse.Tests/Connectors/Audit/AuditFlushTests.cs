using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>Which group commits of the audit writer wait for the disk.</summary>
public sealed class AuditFlushTests
{
    [Theory]
    [InlineData(AuditDurability.PowerLoss, new[] { false }, false)]
    [InlineData(AuditDurability.PowerLoss, new[] { false, true, false }, true)]
    [InlineData(AuditDurability.PowerLoss, new[] { true }, true)]
    [InlineData(AuditDurability.ProcessCrash, new[] { true, false }, false)]
    public void Only_a_commit_holding_a_finished_record_waits_for_the_disk_and_under_process_crash_none(AuditDurability durability, bool[] seals, bool flushes) =>
        Assert.Equal(flushes, SqlAuditLog.MustFlush(durability, seals));
}
