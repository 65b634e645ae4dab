using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Pipeline;
using Gatehouse.Enforcement.Policy;
using Npgsql;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// <c>/healthz</c> (the process answers) and <c>/readyz</c> (the policy is loaded, the state store and every connection
/// answer) for load balancers and orchestrators. Neither needs a token, and neither says more than ok or not: what failed
/// and why goes to the gateway's log, not to whoever asks.
/// </summary>
public static class Health
{
    public const string LivePath = "/healthz";
    public const string ReadyPath = "/readyz";

    /// <summary>Puts <see cref="Answer"/> ahead of every other middleware when registered as the first startup filter.</summary>
    public sealed class First : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(Answer);
            next(app);
        };
    }

    /// <summary>Answers the two paths before host filtering and authentication: probes come by IP and carry no token.</summary>
    public static async Task Answer(HttpContext context, RequestDelegate next)
    {
        var path = context.Request.Path;
        var probe = (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method)) && (path == LivePath || path == ReadyPath);
        if (!probe)
        {
            await next(context);
            return;
        }

        var ready = path == LivePath || await context.RequestServices.GetRequiredService<ReadinessProbe>().IsReadyAsync(context.RequestAborted);
        context.Response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        context.Response.ContentType = "text/plain";
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.WriteAsync(path == LivePath ? "ok\n" : ready ? "ready\n" : "not ready\n", context.RequestAborted);
    }
}

/// <summary>
/// Checks the state store and every connection (a pooled connection and <c>SELECT 1</c>, each within a short deadline).
/// One check runs at a time and its answer is kept for a second, so probes cannot turn into load on the databases. A
/// gateway that is shutting down is not ready.
/// </summary>
public sealed class ReadinessProbe(GatewayState state, PostgresTargets targets, GatewayPolicy policy, GatewayLifetime lifetime, TimeProvider time, ILogger<ReadinessProbe> logger)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Reuse = TimeSpan.FromSeconds(1);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private (DateTimeOffset At, bool Ready)? _last;

    public async Task<bool> IsReadyAsync(CancellationToken cancellationToken)
    {
        // A stopping gateway takes no new calls: the load balancer should stop sending them at once.
        if (lifetime.IsStopping)
        {
            return false;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_last is { } last && time.GetUtcNow() - last.At < Reuse)
            {
                return last.Ready;
            }

            var failures = (await Task.WhenAll(Checks().Select(c => FailureAsync(c.Name, c.Check)))).OfType<string>().ToList();
            if (failures.Count > 0)
            {
                HostLog.NotReady(logger, string.Join("; ", failures));
            }

            _last = (time.GetUtcNow(), failures.Count == 0);
            return failures.Count == 0;
        }
        finally
        {
            _gate.Release();
        }
    }

    private IEnumerable<(string Name, Func<CancellationToken, Task> Check)> Checks()
    {
        yield return ("state store", state.Store.PingAsync);
        foreach (var name in policy.Connections.Keys)
        {
            yield return ($"connection {name}", ct => SelectOneAsync(name, ct));
        }
    }

    private async Task SelectOneAsync(string connection, CancellationToken cancellationToken)
    {
        await using var open = await targets.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT 1", open.Connection);
        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    // The failure as a log line, or null when the check passed in time.
    private static async Task<string?> FailureAsync(string name, Func<CancellationToken, Task> check)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        try
        {
            await check(deadline.Token).ConfigureAwait(false);
            return null;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            return $"{name}: no answer within {Deadline.TotalSeconds:0} s";
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return $"{name}: {e.Message}";
        }
    }
}
