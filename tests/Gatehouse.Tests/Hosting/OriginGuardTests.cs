using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.Tests.Hosting;

public sealed class OriginGuardTests
{
    [Theory]
    [InlineData("http://localhost:6274", true)]
    [InlineData("http://127.0.0.1:3000", true)]
    [InlineData("http://[::1]:8080", true)]
    [InlineData("https://evil.example", false)]
    [InlineData("http://localhost.evil.example", false)]
    [InlineData("null", false)]
    public void Without_configured_origins_only_loopback_browsers_may_call(string origin, bool allowed) =>
        Assert.Equal(allowed, OriginGuard.IsAllowed(origin, HttpSettings.LoopbackOnly));

    [Fact]
    public void Configured_origins_replace_the_loopback_default()
    {
        var settings = new HttpSettings(["gatehouse.internal"], ["https://console.example.com"]);
        Assert.True(OriginGuard.IsAllowed("https://console.example.com", settings));
        Assert.False(OriginGuard.IsAllowed("http://localhost:6274", settings));
    }
}
