using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Gatehouse.Enforcement.Approvals;
using Gatehouse.Enforcement.Policy;
using Microsoft.Extensions.Logging;

namespace Gatehouse.Connectors.Webhooks;

/// <summary>
/// POSTs approval events to a webhook, in the background: a queue, retries with backoff, and a log line when it gives up.
/// Publishing never waits and never fails; the request it is about has already been stored.
/// </summary>
public sealed partial class WebhookNotifier : IApprovalNotifier, IAsyncDisposable
{
    private static readonly TimeSpan[] Backoff = [TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4)];
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private readonly WebhookSettings _settings;
    private readonly ILogger _logger;
    private readonly HttpClient _http;
    private readonly Channel<ApprovalEvent> _queue;
    private readonly Task _loop;
    private long _dropped;

    public WebhookNotifier(WebhookSettings settings, ILogger logger, HttpMessageHandler? handler = null)
    {
        _settings = settings;
        _logger = logger;
        // Redirects are not followed: a receiver answering 307 would have the signed event sent on to wherever it names
        // (another host, an internal address), and a 30x to a GET would ask any address the gateway can reach.
        _http = new HttpClient(handler ?? new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(10) };
        _queue = Channel.CreateBounded<ApprovalEvent>(new BoundedChannelOptions(1000) { FullMode = BoundedChannelFullMode.DropOldest }, Dropped);
        _loop = Task.Run(DeliverAllAsync);
    }

    // A webhook that cannot keep up loses its oldest events: said in the log (the first, then every hundredth), never silently.
    private void Dropped(ApprovalEvent approvalEvent)
    {
        var dropped = Interlocked.Increment(ref _dropped);
        if (dropped == 1 || dropped % 100 == 0)
        {
            DroppedEvents(_logger, approvalEvent.Event, approvalEvent.RequestId, _settings.Url.Host, dropped);
        }
    }

    /// <summary>
    /// The one-line text as a chat channel should show it: Slack reads &lt;...&gt; as mentions (&lt;!channel&gt;) and links with a
    /// text of their own, and an agent's reason or SQL could forge either, or lines that look like the gateway's own.
    /// </summary>
    internal static string ForChat(string text)
    {
        var chat = new System.Text.StringBuilder(text.Length);
        foreach (var c in text)
        {
            _ = c switch
            {
                '&' => chat.Append("&amp;"),
                '<' => chat.Append("&lt;"),
                '>' => chat.Append("&gt;"),
                _ when char.IsControl(c) || char.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.Format or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator => chat.Append(' '),
                _ => chat.Append(c),
            };
        }

        return chat.ToString();
    }

    public void Publish(ApprovalEvent approvalEvent) => _queue.Writer.TryWrite(approvalEvent);

    /// <summary>Delivers what is queued (retries included), waiting at most <paramref name="timeout"/>; for short-lived processes such as the CLI.</summary>
    public async Task FlushAsync(TimeSpan timeout)
    {
        _queue.Writer.TryComplete();
        await Task.WhenAny(_loop, Task.Delay(timeout)).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await FlushAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        _http.Dispose();
    }

    private async Task DeliverAllAsync()
    {
        await foreach (var approvalEvent in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            var body = JsonSerializer.Serialize(approvalEvent with { Text = ForChat(approvalEvent.Text) }, Json);
            for (var attempt = 0; ; attempt++)
            {
                var failure = await SendAsync(body).ConfigureAwait(false);
                if (failure is null)
                {
                    break;
                }

                if (attempt == Backoff.Length)
                {
                    GaveUp(_logger, approvalEvent.Event, approvalEvent.RequestId, _settings.Url.Host, attempt + 1, failure);
                    break;
                }

                await Task.Delay(Backoff[attempt]).ConfigureAwait(false);
            }
        }
    }

    // Null on success; otherwise why it failed (never the secret, never the body).
    private async Task<string?> SendAsync(string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _settings.Url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        string? secret;
        try
        {
            secret = _settings.Secret.Read();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            // Configured but unreadable: send nothing rather than an unsigned body the receiver would have to trust.
            return "the signing secret could not be read";
        }

        if (secret is { Length: > 0 })
        {
            var signature = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(body));
            request.Headers.Add("X-Gatehouse-Signature", "sha256=" + Convert.ToHexStringLower(signature));
        }

        request.Headers.UserAgent.Add(new ProductInfoHeaderValue("gatehouse", "1"));
        try
        {
            using var response = await _http.SendAsync(request).ConfigureAwait(false);
            return response.IsSuccessStatusCode ? null
                : (int)response.StatusCode is >= 300 and < 400 ? $"HTTP {(int)response.StatusCode}, a redirect, which is not followed: set webhook.url to where it leads"
                : $"HTTP {(int)response.StatusCode}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return e.GetType().Name;
        }
    }

    [LoggerMessage(2, LogLevel.Warning, "Webhook to {Host} could not keep up: {Event} of {RequestId} was dropped unsent ({Dropped} events dropped since start); approvers see pending requests in `gatehouse approvals list` and the console")]
    private static partial void DroppedEvents(ILogger logger, string @event, string requestId, string host, long dropped);

    [LoggerMessage(1, LogLevel.Warning, "Webhook for {Event} of {RequestId} to {Host} failed {Attempts} times ({Failure}); the request itself is unaffected")]
    private static partial void GaveUp(ILogger logger, string @event, string requestId, string host, int attempts, string failure);
}

/// <summary>No webhook configured.</summary>
public sealed class NoNotifier : IApprovalNotifier
{
    public void Publish(ApprovalEvent approvalEvent)
    {
    }
}
