using Gatehouse.Connectors.State;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Tests.Infrastructure;

namespace Gatehouse.Tests.Connectors.Audit;

/// <summary>Which group commits of the audit writer wait for the disk, and its flush of the log: fsync(2), where every error is a failure.</summary>
public sealed class AuditFlushTests
{
    [Theory]
    [InlineData(AuditDurability.PowerLoss, new[] { false }, false)]
    [InlineData(AuditDurability.PowerLoss, new[] { false, true, false }, true)]
    [InlineData(AuditDurability.PowerLoss, new[] { true }, true)]
    [InlineData(AuditDurability.ProcessCrash, new[] { true, false }, false)]
    public void Only_a_commit_holding_a_finished_record_waits_for_the_disk_and_under_process_crash_none(AuditDurability durability, bool[] seals, bool flushes) =>
        Assert.Equal(flushes, SqlAuditLog.MustFlush(durability, seals));

    [Fact]
    public void A_file_is_flushed()
    {
        var path = Path.Combine(TestDirectory.Create("flush"), "log");
        File.WriteAllText(path, "a record");
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);

        DiskFlush.Flush(file);
    }

    // A file that cannot be flushed at all (here a device, which answers EINVAL as some FUSE and network mounts do) is a
    // failure: .NET's own flush returns quietly on the same handle, which would vouch for a record no disk holds.
    [Fact]
    public void A_file_the_system_cannot_flush_is_a_failure_where_dotnet_would_return_quietly()
    {
        using var device = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Read);
        RandomAccess.FlushToDisk(device);

        var failure = Assert.Throws<IOException>(() => DiskFlush.Flush(device));
        Assert.Contains("fsync failed", failure.Message, StringComparison.Ordinal);
        Assert.Contains("errno 22", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_closed_handle_is_a_failure()
    {
        var path = Path.Combine(TestDirectory.Create("flush"), "log");
        File.WriteAllText(path, "a record");
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        file.Dispose();

        Assert.Throws<ObjectDisposedException>(() => DiskFlush.Flush(file));
    }
}
