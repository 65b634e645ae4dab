using System.ClientModel;
using System.Reflection;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Connectors.State;
using Gatehouse.Connectors.Webhooks;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Classification;
using Gatehouse.Enforcement.Execution;
using Gatehouse.Enforcement.Identity;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Server;
using OpenAI;

namespace Gatehouse.McpServer.Hosting;

/// <summary>The composition root shared by the stdio and HTTP hosts: policy, state store, connectors, pipeline and tools.</summary>
public static class GatewayComposition
{
    // Read once: stateless HTTP configures the server's options again for every request.
    private static readonly string Version = typeof(GatewayComposition).Assembly.GetName().Version?.ToString(3) ?? "0.1.0";

    public static IMcpServerBuilder AddGateway(this IServiceCollection services, GatewayPolicy policy, GatewayState gatewayState)
    {
        services.AddSingleton(policy);
        services.AddSingleton(new LivePolicy(policy));
        services.AddSingleton(TimeProvider.System);
        var state = gatewayState.Store;
        services.AddSingleton(gatewayState);
        services.AddSingleton(state);
        services.AddSingleton(gatewayState.Audit);
        AddAuditServices(services, policy, gatewayState.Audit);
        services.AddSingleton<IApprovalNotifier>(sp => policy.Approvals.Webhook is { } hook
            ? new WebhookNotifier(hook, sp.GetRequiredService<ILoggerFactory>().CreateLogger("Gatehouse.Webhook"))
            : new NoNotifier());
        services.AddSingleton(sp => new NotifyingApprovals(state, state, sp.GetRequiredService<IApprovalNotifier>())
        {
            Reviewer = policy.Approvals.Reviewer is { } reviewer ? Reviewer(reviewer, sp.GetRequiredService<ILoggerFactory>().CreateLogger("Gatehouse.Reviewer")) : null,
            Logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Gatehouse.Reviewer"),
        });
        services.AddSingleton<IApprovalStore>(sp => sp.GetRequiredService<NotifyingApprovals>());
        services.AddSingleton<IStatementApprovalStore>(sp => sp.GetRequiredService<NotifyingApprovals>());
        services.AddSingleton<ApprovalDesk>();
        services.AddSingleton<AgentSwitchboard>();
        services.AddSingleton<IAgentDirectory>(state);
        services.AddSingleton(sp => new TokenValidator(policy.Issuers, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<Identifier>();
        // Built by the container so it is also disposed by it: pooled connections close with the host.
        services.AddSingleton(sp => new PostgresTargets(sp.GetRequiredService<LivePolicy>()));
        services.AddSingleton<IStatementAnalyzer, PostgresAnalyzer>();
        services.AddSingleton<ICatalogVersionSource, PostgresCatalogVersions>();
        services.AddSingleton<IFunctionCatalogSource, PostgresFunctionCatalog>();
        services.AddSingleton<IQueryExecutor, PostgresExecutor>();
        services.AddSingleton<ISchemaCatalog, PostgresCatalog>();
        services.AddSingleton<GatewayLifetime>();
        services.AddSingleton<GatewayPipeline>();
        services.AddHostedService<GracefulShutdown>();
        services.AddSingleton<PolicyReloader>();
        services.AddHostedService(sp => sp.GetRequiredService<PolicyReloader>());
        services.AddHostedService<PoolRotation>();
        services.Configure<HostOptions>(o => o.ShutdownTimeout = GracefulShutdown.HostTimeout(policy));
        services.AddSingleton(new SessionInfo("stdio-" + Guid.NewGuid().ToString("N")[..12]));
        var builder = services.AddMcpServer(options =>
        {
            options.ServerInfo = new() { Name = "gatehouse", Title = "Gatehouse", Version = Version };
            options.ServerInstructions = GatehouseTools.Instructions;
        });
        AddTools(services);
        services.AddSingleton<ToolCallGuard>();
        builder.WithRequestFilters(filters => filters.AddCallToolFilter(next =>
            (request, cancellationToken) => request.Services!.GetRequiredService<ToolCallGuard>().CallAsync(request, next, cancellationToken)));
        return builder;
    }

    // The tools as WithTools<GatehouseTools>() would describe them, but all served by one GatehouseTools (whose services
    // are singletons) instead of one built by reflection for every call.
    private static void AddTools(IServiceCollection services)
    {
        services.AddSingleton<GatehouseTools>();
        foreach (var method in typeof(GatehouseTools).GetMethods(BindingFlags.Public | BindingFlags.Instance))
        {
            if (method.GetCustomAttribute<McpServerToolAttribute>() is not null)
            {
                services.AddSingleton(sp => McpServerTool.Create(method, sp.GetRequiredService<GatehouseTools>(), new McpServerToolCreateOptions { Services = sp }));
            }
        }
    }

    // The pipeline records through the sink when one is configured; retention and telemetry run only when the policy asks.
    private static void AddAuditServices(IServiceCollection services, GatewayPolicy policy, IAuditLog audit)
    {
        var settings = policy.Gateway;
        if (settings.Audit.Sink is { } sink)
        {
            services.AddSingleton<IAuditStore>(_ => AuditSink.ToFile(audit, sink));
        }
        else
        {
            services.AddSingleton<IAuditStore>(audit);
        }

        if (settings.Audit.Retention.Enabled)
        {
            services.AddHostedService<AuditRetentionJob>();
        }

        if (settings.Telemetry.OtlpEndpoint is { } endpoint)
        {
            services.AddGatewayTelemetry(settings.Telemetry.ServiceName, endpoint);
        }
    }

    // Any OpenAI-compatible endpoint (OpenAI, Azure OpenAI, Ollama, vLLM…) through Microsoft.Extensions.AI.
    // A key that cannot be read leaves approvals without a reviewer rather than failing calls.
    private static ApprovalReviewer? Reviewer(ReviewerSettings settings, ILogger logger)
    {
        string key;
        try
        {
            key = settings.ApiKey.Read() ?? "not-needed";
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            logger.LogWarning("The AI reviewer is off: its API key could not be read ({Reason})", e.Message);
            return null;
        }

        var chat = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = settings.Endpoint }).GetChatClient(settings.Model).AsIChatClient();
        return new ApprovalReviewer(chat, settings.Timeout);
    }
}

/// <summary>The stdio session id: one per server process.</summary>
public sealed record SessionInfo(string StdioSessionId);
