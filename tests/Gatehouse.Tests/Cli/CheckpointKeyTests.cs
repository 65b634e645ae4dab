using Gatehouse.McpServer.Cli;

namespace Gatehouse.Tests.Cli;

/// <summary>The key that signs audit purge checkpoints, as a crash or a second process may find it.</summary>
public sealed class CheckpointKeyTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gatehouse-checkpoint-" + Guid.NewGuid().ToString("N"));

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_key_made_once_signs_what_it_verifies_and_leaves_no_other_file()
    {
        var key = new CheckpointKey(Path.Combine(_directory, "audit-checkpoint.pem"));

        var signature = key.Sign("checkpoint 1");

        Assert.True(key.Verify("checkpoint 1", signature));
        Assert.False(key.Verify("checkpoint 2", signature));
        Assert.Equal(["audit-checkpoint.pem"], Directory.GetFiles(_directory).Select(Path.GetFileName));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_directory, "audit-checkpoint.pem")));
    }

    [Fact]
    public void A_key_file_cut_short_verifies_nothing_instead_of_failing_verify()
    {
        var path = Path.Combine(_directory, "audit-checkpoint.pem");
        var signature = new CheckpointKey(path).Sign("checkpoint 1");
        File.WriteAllText(path, "");

        Assert.False(new CheckpointKey(path).Verify("checkpoint 1", signature));
    }
}
