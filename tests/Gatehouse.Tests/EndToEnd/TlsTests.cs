using System.Diagnostics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Connectors.Postgres;
using Gatehouse.McpServer.Demo;
using Gatehouse.Tests.Infrastructure;
using Npgsql;

namespace Gatehouse.Tests.EndToEnd;

/// <summary>
/// TLS to PostgreSQL from the policy's sslmode and sslrootcert, against a server of its own with a certificate for
/// "localhost" issued by a test CA.
/// </summary>
public sealed class TlsTests : IAsyncLifetime
{
    private ShopServer _shop = null!;
    private string _ca = "";
    private string _otherCa = "";

    public async Task InitializeAsync()
    {
        _shop = await ShopServer.StartAsync("pg-tls");

        using var ca = CreateCa("Gatehouse Test CA");
        using var otherCa = CreateCa("Somebody Else's CA");
        _ca = Path.Combine(_shop.Server.Directory, "ca.pem");
        _otherCa = Path.Combine(_shop.Server.Directory, "other-ca.pem");
        await File.WriteAllTextAsync(_ca, ca.ExportCertificatePem());
        await File.WriteAllTextAsync(_otherCa, otherCa.ExportCertificatePem());

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var certificate = request.Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(16));
        var certificateFile = Path.Combine(_shop.Server.DataDirectory, "server.crt");
        var keyFile = Path.Combine(_shop.Server.DataDirectory, "server.key");
        await File.WriteAllTextAsync(certificateFile, certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (Environment.IsPrivilegedProcess)
        {
            Process.Start("chown", ["postgres:postgres", certificateFile, keyFile]).WaitForExit();
        }

        await using var admin = new NpgsqlConnection(_shop.Server.AdminConnectionString);
        await admin.OpenAsync();
        await using (var on = new NpgsqlCommand("ALTER SYSTEM SET ssl = on", admin))
        {
            await on.ExecuteNonQueryAsync();
        }

        await using (var reload = new NpgsqlCommand("SELECT pg_reload_conf()", admin))
        {
            await reload.ExecuteNonQueryAsync();
        }

        // The reload is a signal: a new server process shows the setting once the postmaster has read it (and its TLS keys).
        var fresh = new NpgsqlConnectionStringBuilder(_shop.Server.AdminConnectionString) { Pooling = false }.ConnectionString;
        for (var deadline = DateTime.UtcNow.AddSeconds(30); ; await Task.Delay(50))
        {
            await using var connection = new NpgsqlConnection(fresh);
            await connection.OpenAsync();
            await using var show = new NpgsqlCommand("SHOW ssl", connection);
            if ((string?)await show.ExecuteScalarAsync() == "on")
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "PostgreSQL did not turn TLS on within 30 s of the reload");
        }
    }

    public async Task DisposeAsync() => await _shop.DisposeAsync();

    [Fact]
    public async Task Verify_full_with_the_servers_CA_connects_over_TLS()
    {
        long encrypted = 0;
        var result = await QueryAsync("localhost", $"sslmode: verify-full\nsslrootcert: {_ca}", async () =>
        {
            await using var admin = new NpgsqlConnection(_shop.Server.AdminConnectionString);
            await admin.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'gatehouse_gateway' AND s.ssl", admin);
            encrypted = (long)(await command.ExecuteScalarAsync())!;
        });

        Assert.NotEqual(true, result.IsError);
        Assert.True(encrypted > 0, "the gateway's connections use TLS");
    }

    [Theory]
    [InlineData("127.0.0.1", "verify-full", true)] // the certificate names localhost, not 127.0.0.1
    [InlineData("localhost", "verify-full", false)]
    [InlineData("127.0.0.1", "verify-ca", true)] // the name is not checked, the CA is
    public async Task A_server_that_cannot_be_verified_is_refused(string host, string mode, bool rightCa)
    {
        if (rightCa && mode == "verify-ca")
        {
            Assert.NotEqual(true, (await QueryAsync(host, $"sslmode: verify-ca\nsslrootcert: {_ca}")).IsError);
            var other = await QueryAsync(host, $"sslmode: verify-ca\nsslrootcert: {_otherCa}");
            Assert.True(other.IsError);
            Assert.Equal("database.unavailable", other.Rule());
            return;
        }

        var result = await QueryAsync(host, $"sslmode: {mode}\nsslrootcert: {(rightCa ? _ca : _otherCa)}");

        Assert.True(result.IsError);
        Assert.Equal("database.unavailable", result.Rule());
        Assert.Contains("certificate", result.Text());
        Assert.DoesNotContain(_shop.GatewayPassword, result.Text());
    }

    [Fact]
    public async Task Setup_reaches_the_server_under_the_connections_tls_settings_unless_the_admin_dsn_sets_its_own()
    {
        // The admin's password, and the gateway's when setup makes its role, cross this link: it connected with Npgsql's
        // default (TLS without any certificate check) whatever the policy required.
        await using (var admin = new NpgsqlConnection(_shop.Server.AdminConnectionString))
        {
            await admin.OpenAsync();
            await using var password = new NpgsqlCommand("ALTER ROLE postgres PASSWORD 'setup-admin'", admin);
            await password.ExecuteNonQueryAsync();
        }

        // The password in PGPASSWORD, as the CLI asks: a password in --admin-connection is refused.
        var adminDsn = $"Host=localhost;Port={_shop.Server.Port};Username=postgres;Timeout=5";
        async Task<(int ExitCode, string Output)> SetupAsync(string tls, string dsn, string inConnectionString = "")
        {
            var gateway = TestGateway.Create($"Host=localhost;Port={_shop.Server.Port};Database=shop;Username=gatehouse_gateway;Timeout=5{inConnectionString}", _shop.GatewayPassword, connectionSettings: tls + "\ntags: { public.customers.ssn: ssn }");
            var (exitCode, stdout, stderr) = await StdioTests.RunGatehouse(
                ["setup", "--config", gateway.PolicyPath, "--connection", "shop", "--dry-run", "--admin-connection", dsn], environment: new Dictionary<string, string> { ["PGPASSWORD"] = "setup-admin" });
            Assert.False(File.Exists(gateway.Policy.Gateway.StatePath), "setup made the gateway's state, which only a gateway makes");
            return (exitCode, stdout + stderr);
        }

        var wrongCa = await SetupAsync($"sslmode: verify-full\nsslrootcert: {_otherCa}", adminDsn);
        Assert.NotEqual(0, wrongCa.ExitCode);
        Assert.True(wrongCa.Output.Contains("certificate", StringComparison.OrdinalIgnoreCase), wrongCa.Output);
        Assert.DoesNotContain("setup-admin", wrongCa.Output, StringComparison.Ordinal);

        var rightCa = await SetupAsync($"sslmode: verify-full\nsslrootcert: {_ca}", adminDsn);
        Assert.True(rightCa.ExitCode == 0, rightCa.Output);

        var ownTls = await SetupAsync($"sslmode: verify-full\nsslrootcert: {_otherCa}", adminDsn + $";SSL Mode=VerifyFull;Root Certificate={_ca}");
        Assert.True(ownTls.ExitCode == 0, ownTls.Output);

        // TLS set in the connection string rather than as sslmode and sslrootcert holds for the admin link just the same.
        var inConnectionString = await SetupAsync("", adminDsn, $";SSL Mode=VerifyFull;Root Certificate={_otherCa}");
        Assert.NotEqual(0, inConnectionString.ExitCode);
        Assert.Contains("certificate", inConnectionString.Output, StringComparison.OrdinalIgnoreCase);
    }

    private async Task<ModelContextProtocol.Protocol.CallToolResult> QueryAsync(string host, string tls, Func<Task>? whileServing = null)
    {
        var gateway = TestGateway.Create($"Host={host};Port={_shop.Server.Port};Database=shop;Username=gatehouse_gateway;Timeout=5", _shop.GatewayPassword, connectionSettings: tls);
        await using var http = await HttpGateway.StartAsync(gateway);
        await using var client = await GatewayClients.HttpAsync(http.Endpoint, gateway.Mint("analyst"));
        var result = await client.QueryAsync("select count(*) from orders");
        await (whileServing?.Invoke() ?? Task.CompletedTask);
        return result;
    }

    private static X509Certificate2 CreateCa(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
    }
}
