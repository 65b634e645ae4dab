using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Gatehouse.Enforcement.Pipeline;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Records each request to /mcp that carries no valid token, so none is invisible, up to a rate per client and a rate in
/// all. Each record is a durable write, so without a bound anyone who can reach the port could make the gateway write and
/// sync its audit store as fast as they can send, and fill its disk. Past the rate a request is answered 429 without a
/// record, and the log says how many were, at most once per <see cref="LogEvery"/>. The console's sign-in, which records
/// every attempt, is bounded by the same rates, counted apart: a flood of tokenless requests to /mcp does not lock the
/// admins out of the console.
/// </summary>
internal sealed class RefusalRecorder(GatewayPipeline pipeline, ILogger<RefusalRecorder> logger, TimeProvider time) : IDisposable
{
    /// <summary>Records per second from one client, sustained.</summary>
    public const int PerSecond = 20;

    /// <summary>Records from one client in a burst.</summary>
    public const int Burst = 50;

    /// <summary>Records per second from all clients together, sustained (in a burst, <see cref="TotalBurst"/>).</summary>
    public const int TotalPerSecond = 200;

    public const int TotalBurst = 500;

    private static readonly TimeSpan LogEvery = TimeSpan.FromSeconds(10);

    // One client is one IPv4 address, or one IPv6 /64: whoever holds an IPv6 address holds its /64 and can send from any
    // address in it. Many clients together are bounded too, since addresses are not scarce.
    private readonly PartitionedRateLimiter<HttpContext> _limiter = Limiter();
    private readonly PartitionedRateLimiter<HttpContext> _signIns = Limiter();

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

        if (!TryAdmit(context))
        {
            context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
            return;
        }

        await RecordAsync(context);
        await next(context);
    }

    /// <summary>Records a request to /mcp refused for its token, under whatever identity the token carries (once admitted).</summary>
    public async Task RecordAsync(HttpContext context)
    {
        var token = HttpCallerToken.BearerToken(context.Request.Headers.Authorization.ToString());
        await pipeline.OpenSessionAsync(new CallContext(CallContext.HttpConnect, token, "http", null), context.RequestAborted);
    }

    /// <summary>
    /// Whether a request that will be recorded, though no token vouches for its sender, is within the rates. When it is not,
    /// it is counted for the log and the response says when to retry; the caller answers 429 and records nothing.
    /// </summary>
    public bool TryAdmit(HttpContext context) => TryAdmit(_limiter, context);

    /// <summary><see cref="TryAdmit(HttpContext)"/> for a console sign-in, within rates of their own.</summary>
    public bool TryAdmitSignIn(HttpContext context) => TryAdmit(_signIns, context);

    private static PartitionedRateLimiter<HttpContext> Limiter() => PartitionedRateLimiter.CreateChained(
        PartitionedRateLimiter.Create<HttpContext, string>(context => Bucket(Client(context.Connection.RemoteIpAddress), PerSecond, Burst)),
        PartitionedRateLimiter.Create<HttpContext, string>(_ => Bucket("", TotalPerSecond, TotalBurst)));

    private bool TryAdmit(PartitionedRateLimiter<HttpContext> limiter, HttpContext context)
    {
        using var lease = limiter.AttemptAcquire(context);
        if (lease.IsAcquired)
        {
            return true;
        }

        Refuse(context);
        return false;
    }

    /// <summary>The client a rate applies to: an IPv4 address (an IPv4-mapped one too), or an IPv6 address's /64.</summary>
    internal static string Client(IPAddress? address)
    {
        if (address is null)
        {
            return "";
        }

        if (address.IsIPv4MappedToIPv6 || address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.MapToIPv4().ToString();
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPNetwork(new IPAddress(bytes), 64).ToString();
    }

    private static RateLimitPartition<string> Bucket(string key, int perSecond, int burst) =>
        RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = perSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        });

    private void Refuse(HttpContext context)
    {
        _lastAddress = context.Connection.RemoteIpAddress?.ToString() ?? "an unknown address";
        Interlocked.Increment(ref _unrecorded);
        var now = time.GetTimestamp();
        var last = Interlocked.Read(ref _lastLogged);
        if ((last == 0 || time.GetElapsedTime(last, now) >= LogEvery) && Interlocked.CompareExchange(ref _lastLogged, now, last) == last)
        {
            HostLog.RefusalsUnrecorded(logger, Interlocked.Exchange(ref _unrecorded, 0), _lastAddress, PerSecond, TotalPerSecond);
        }

        context.Response.Headers.RetryAfter = "1";
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _unrecorded, 0) is > 0 and var left)
        {
            HostLog.RefusalsUnrecorded(logger, left, _lastAddress, PerSecond, TotalPerSecond);
        }

        _limiter.Dispose();
        _signIns.Dispose();
    }
}
