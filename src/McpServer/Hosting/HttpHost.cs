using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.HostFiltering;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.HttpOverrides;
using ModelContextProtocol.AspNetCore.Authentication;
using ModelContextProtocol.Authentication;
using Serilog;

namespace Gatehouse.McpServer.Hosting;

/// <summary>MCP over Streamable HTTP at /mcp: a Bearer token on every request, loopback-only Host and Origin unless configured.</summary>
public static class HttpHost
{
    public const string McpPath = "/mcp";

    /// <summary>The least any request's body may be; a larger max_sql_length raises it (16 times, for JSON escaping).</summary>
    public const long MaxRequestBodyBytes = 2 * 1024 * 1024;

    public static async Task<int> RunAsync(GatewayPolicy policy, GatewayState state, string endpoint, Func<Uri, Task>? onStarted, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        Logging.Attach(builder.Logging);
        // ASP.NET's web defaults believe X-Forwarded-* from every address when ASPNETCORE_FORWARDEDHEADERS_ENABLED is set, a
        // common container recipe. Only gateway.http.trusted_proxies decides that here.
        builder.Configuration.AddInMemoryCollection([new("ForwardedHeaders_Enabled", "false")]);
        builder.WebHost.UseUrls($"http://{endpoint}");
        // A tool call is a statement and its parameters (each at most max_sql_length, 64 KB by default), so no request to the
        // gateway needs ASP.NET's 30 MB: whatever an agent sends is read, parsed and recorded, so it is bounded here, and
        // each request's bound follows the policy in force (see ServeAsync).
        builder.WebHost.ConfigureKestrel(o => o.Limits.MaxRequestBodySize = BodyLimit(policy));
        builder.Services.AddHttpContextAccessor();
        builder.Services.AddSingleton<ICallerToken, HttpCallerToken>();
        builder.Services.AddGateway(policy, state).WithHttpTransport();
        if (policy.Admin is not null)
        {
            builder.Services.AddSingleton<Admin.AdminGate>();
            builder.Services.AddSingleton<Admin.ConsoleSessions>();
        }

        builder.Services.AddSingleton<ReadinessProbe>();
        builder.Services.AddSingleton<RefusalRecorder>();
        // First of all startup filters, so probes are answered ahead of the host filtering ASP.NET puts in front.
        builder.Services.Insert(0, ServiceDescriptor.Transient<IStartupFilter, Health.First>());
        AddAuthentication(builder.Services, policy);
        builder.Services.Configure<HostFilteringOptions>(o => o.AllowedHosts = policy.Gateway.Http.AllowedHosts.ToList());

        await using var app = builder.Build();
        // The first readiness check (the state store and a pooled connection to each database, Npgsql's type set-up with
        // it) runs while the endpoints are mapped and Kestrel starts, on the other core; the first /readyz reuses its answer.
        // Awaited before the host (and the pools it holds) is disposed, however the host ends.
        var firstCheck = Task.Run(() => app.Services.GetRequiredService<ReadinessProbe>().IsReadyAsync(app.Lifetime.ApplicationStopping), CancellationToken.None);
        try
        {
            return await ServeAsync(app, policy, onStarted, cancellationToken);
        }
        finally
        {
            await ((Task)firstCheck).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>The most a request's body may be under <paramref name="policy"/>: 16 times max_sql_length (for JSON escaping), at least 2 MB.</summary>
    public static long BodyLimit(GatewayPolicy policy) => Math.Max(MaxRequestBodyBytes, 16L * policy.Gateway.Limits.MaxSqlLength);

    private static async Task<int> ServeAsync(WebApplication app, GatewayPolicy policy, Func<Uri, Task>? onStarted, CancellationToken cancellationToken)
    {
        // A reload that raises (or lowers) max_sql_length moves the body limit for the next request, before anything reads it.
        var live = app.Services.GetRequiredService<LivePolicy>();
        app.Use((context, next) =>
        {
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } body)
            {
                body.MaxRequestBodySize = BodyLimit(live.Current);
            }

            return next(context);
        });
        UseTrustedProxies(app, policy.Gateway.Http);
        app.UseHostFiltering();
        app.Use(OriginGuard.Create(policy.Gateway.Http));
        app.UseAuthentication();
        app.Use(AuthChallenges.Create(
            live,
            app.Services.GetRequiredService<Identifier>(),
            app.Services.GetRequiredService<RefusalRecorder>(),
            app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AuthChallenges))));
        // A request to /mcp without a valid token never reaches a tool; it is recorded here so it is not invisible.
        app.Use(app.Services.GetRequiredService<RefusalRecorder>().InvokeAsync);
        app.UseAuthorization();
        app.MapMcp(McpPath).RequireAuthorization();
        Admin.AdminApi.Map(app, policy);
        Admin.AdminConsole.Map(app, policy);

        await app.StartAsync(cancellationToken);
        var url = new Uri(app.Urls.First() + McpPath);
        StartupSummary.Write(policy, $"MCP over HTTP at {url}");
        if (onStarted is not null)
        {
            await onStarted(url);
        }

        await app.WaitForShutdownAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    // Behind a TLS-terminating proxy the gateway sees plain http from the proxy's address. From the proxies the policy
    // names (and only those: the defaults' loopback is cleared) X-Forwarded-Proto and X-Forwarded-For say what the client
    // used and who it is, so the resource metadata says https, the console's cookie is Secure and its origin check passes,
    // and tokenless requests are limited per client rather than per proxy. A chain of named proxies is walked back to the
    // first address not among them. Host is not taken from X-Forwarded-Host: the proxy passes the client's Host through.
    private static void UseTrustedProxies(WebApplication app, HttpSettings settings)
    {
        if (settings.TrustedProxies.Count == 0)
        {
            return;
        }

        var options = new ForwardedHeadersOptions
        {
            ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto,
            ForwardLimit = null,
        };
        options.KnownProxies.Clear();
        options.KnownIPNetworks.Clear();
        foreach (var network in settings.TrustedProxies)
        {
            options.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network));
        }

        app.UseForwardedHeaders(options);
        // The header's scheme is taken as sent ("HTTPS" included); the resource's URL must be the one clients compare.
        app.Use((context, next) =>
        {
            context.Request.Scheme = string.Equals(context.Request.Scheme, "https", StringComparison.OrdinalIgnoreCase) ? "https" : "http";
            return next(context);
        });
    }

    private static void AddAuthentication(IServiceCollection services, GatewayPolicy policy)
    {
        services
            .AddAuthentication(o =>
            {
                o.DefaultAuthenticateScheme = JwtBearerDefaults.AuthenticationScheme;
                o.DefaultChallengeScheme = McpAuthenticationDefaults.AuthenticationScheme;
            })
            .AddJwtBearer(o =>
            {
                o.MapInboundClaims = false;
                o.TokenHandlers.Clear();
                // The refusal's reason, for the 401's error_description (a failed result is not kept on the request).
                o.Events = new JwtBearerEvents
                {
                    OnAuthenticationFailed = context =>
                    {
                        context.HttpContext.Items[AuthChallenges.RefusalItem] = context.Exception.Message;
                        return Task.CompletedTask;
                    },
                    OnTokenValidated = context =>
                    {
                        if (context.SecurityToken is GatewayTokenHandler.VerifiedToken token)
                        {
                            context.HttpContext.Items[AuthChallenges.IdentityItem] = token.Identity;
                        }

                        return Task.CompletedTask;
                    },
                };
            })
            .AddMcp(o => o.Events.OnResourceMetadataRequest = context =>
            {
                var request = context.HttpContext.Request;
                context.ResourceMetadata = new ProtectedResourceMetadata
                {
                    Resource = $"{request.Scheme}://{request.Host}{McpPath}",
                    AuthorizationServers = policy.Issuers.Where(i => Uri.TryCreate(i.Issuer, UriKind.Absolute, out _)).Select(i => i.Issuer).ToList(),
                    BearerMethodsSupported = ["header"],
                    ScopesSupported = policy.Gateway.ToolScopes.Values.SelectMany(s => s).Concat(policy.Issuers.SelectMany(i => i.RequiredScopes)).Distinct(StringComparer.Ordinal).ToList(),
                    ResourceName = "Gatehouse",
                };
                return Task.CompletedTask;
            });
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
            .Configure<TokenValidator>((o, validator) => o.TokenHandlers.Add(new GatewayTokenHandler(validator)));
        services.AddAuthorization();
    }

}
