using System.Threading.RateLimiting;
using Gatehouse.Enforcement.Pipeline;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Records each request to /mcp that carries no valid token, so none is invisible, up to a rate per client address. Each
/// record is a durable write, so without a bound anyone who can reach the port could make the gateway write and sync its
/// audit store as fast as they can send, and fill its disk. Past the rate a request is answered 429 without a record, and
/// the log says how many were, at most once per <see cref="LogEvery"/>.
/// </summary>
internal sealed class RefusalRecorder(GatewayPipeline pipeline, ILogger<RefusalRecorder> logger, TimeProvider time) : IDisposable
{
    /// <summary>Records per second from one address, sustained.</summary>
    public const int PerSecond = 20;

    /// <summary>Records from one address in a burst.</summary>
    public const int Burst = 50;

    private static readonly TimeSpan LogEvery = TimeSpan.FromSeconds(10);

    private readonly PartitionedRateLimiter<HttpContext> _limiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
        RateLimitPartition.GetTokenBucketLimiter(context.Connection.RemoteIpAddress?.ToString() ?? "", _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = Burst,
            TokensPerPeriod = PerSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));

    private long _unrecorded;
    private long _lastLogged;
    private volatile string _lastAddress = "";

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (!context.Request.Path.StartsWithSegments(HttpHost.McpPath) || context.User.Identity?.IsAuthenticated == true)
        {
            await next(context);
            return;
        }

        using var lease = _limiter.AttemptAcquire(context);
        if (!lease.IsAcquired)
        {
            Refuse(context);
            return;
        }

        var token = HttpCallerToken.BearerToken(context.Request.Headers.Authorization.ToString());
        await pipeline.OpenSessionAsync(new CallContext(CallContext.HttpConnect, token, "http", null), context.RequestAborted);
        await next(context);
    }

    private void Refuse(HttpContext context)
    {
        _lastAddress = context.Connection.RemoteIpAddress?.ToString() ?? "an unknown address";
        Interlocked.Increment(ref _unrecorded);
        var now = time.GetTimestamp();
        var last = Interlocked.Read(ref _lastLogged);
        if ((last == 0 || time.GetElapsedTime(last, now) >= LogEvery) && Interlocked.CompareExchange(ref _lastLogged, now, last) == last)
        {
            HostLog.RefusalsUnrecorded(logger, Interlocked.Exchange(ref _unrecorded, 0), _lastAddress, PerSecond);
        }

        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        context.Response.Headers.RetryAfter = "1";
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _unrecorded, 0) is > 0 and var left)
        {
            HostLog.RefusalsUnrecorded(logger, left, _lastAddress, PerSecond);
        }

        _limiter.Dispose();
    }
}
