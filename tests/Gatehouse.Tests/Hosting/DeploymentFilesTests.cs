using Gatehouse.Enforcement.Policy;
using Gatehouse.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace Gatehouse.Tests.Hosting;

/// <summary>deploy/: the compose file keeps its promises (read-only policy, secrets from files), and its policy is valid.</summary>
public sealed class DeploymentFilesTests
{
    private static readonly string Deploy = Path.Combine(OidcProvider.RepositoryRoot(), "deploy");

    private static YamlMappingNode Compose()
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(Path.Combine(Deploy, "docker-compose.yml"))));
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlMappingNode Service(string name) => (YamlMappingNode)((YamlMappingNode)Compose()["services"])[name];

    private static IEnumerable<string> Strings(YamlNode node) => ((YamlSequenceNode)node).Children.Select(c => ((YamlScalarNode)c).Value!);

    [Fact]
    public void The_deployed_policy_is_valid_and_reads_its_password_from_a_compose_secret()
    {
        var policy = PolicyLoader.LoadFile(Path.Combine(Deploy, "config", "gatehouse.yaml"));

        Assert.Equal("/run/secrets/shop_password", policy.Connections["shop"].Password.FilePath);
        Assert.StartsWith("/data/", policy.Gateway.StatePath);
        Assert.Contains("shop_password", Strings(Service("gatehouse")["secrets"]));
        Assert.True(
            TimeSpan.FromSeconds(int.Parse(((YamlScalarNode)Service("gatehouse")["stop_grace_period"]).Value!.TrimEnd('s'))) > policy.Gateway.ShutdownDeadline + TimeSpan.FromSeconds(5),
            "the container gets longer to stop than the gateway's shutdown deadline");
    }

    [Fact]
    public void The_policy_is_mounted_read_only_and_no_secret_sits_in_the_compose_file()
    {
        foreach (var name in new[] { "gatehouse", "setup" })
        {
            Assert.Contains("./config:/config:ro", Strings(Service(name)["volumes"]));
        }

        var secrets = (YamlMappingNode)Compose()["secrets"];
        Assert.All(secrets.Children.Values, s => Assert.StartsWith("./secrets/", ((YamlScalarNode)((YamlMappingNode)s)["file"]).Value));
        var environment = (YamlMappingNode)Service("postgres")["environment"];
        Assert.All(environment.Children.Keys, key => Assert.EndsWith("_FILE", ((YamlScalarNode)key).Value));
        Assert.Contains("secrets/", File.ReadAllText(Path.Combine(Deploy, ".gitignore")));
    }
}
