using System.Net;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.Tests.Hosting;

/// <summary>Who counts as one client for the rate of unvouched-for records.</summary>
public sealed class RefusalRecorderTests
{
    [Theory]
    [InlineData("203.0.113.7", "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", "203.0.113.7")]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2::9", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:3::9", "2001:db8:1:3::/64")]
    public void One_client_is_an_IPv4_address_or_an_IPv6_64(string address, string client)
    {
        Assert.Equal(client, RefusalRecorder.Client(IPAddress.Parse(address)));
    }
}
