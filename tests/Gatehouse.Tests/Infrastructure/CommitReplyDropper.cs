using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>
/// A loopback TCP proxy in front of PostgreSQL that can lose the reply to one COMMIT: once armed, it closes both sides
/// instead of passing on the server's response that holds COMMIT's CommandComplete. The server has committed; the client
/// only sees its connection drop, as when a network fails at that moment.
/// </summary>
public sealed class CommitReplyDropper : IAsyncDisposable
{
    // CommandComplete: 'C', its length (4 + "COMMIT\0"), the tag.
    private static readonly byte[] CommitComplete = [(byte)'C', 0, 0, 0, 11, .. "COMMIT"u8, 0];

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly EndPoint _server;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private Task _accepting = Task.CompletedTask;
    private int _armed;
    private int _lost;

    private CommitReplyDropper(EndPoint server) => _server = server;

    /// <summary>The target's connection string, sent through the proxy instead.</summary>
    public string ConnectionString { get; private set; } = "";

    /// <summary>How many COMMIT replies were lost.</summary>
    public int RepliesLost => Volatile.Read(ref _lost);

    public static CommitReplyDropper Start(string target)
    {
        var builder = new NpgsqlConnectionStringBuilder(target);
        EndPoint server = builder.Host!.StartsWith('/')
            ? new UnixDomainSocketEndPoint(Path.Combine(builder.Host, $".s.PGSQL.{builder.Port}"))
            : new DnsEndPoint(builder.Host, builder.Port);
        var proxy = new CommitReplyDropper(server);
        proxy._listener.Start();
        builder.Host = "127.0.0.1";
        builder.Port = ((IPEndPoint)proxy._listener.LocalEndpoint).Port;
        builder.SslMode = SslMode.Disable;
        proxy.ConnectionString = builder.ConnectionString;
        proxy._accepting = proxy.AcceptAsync();
        return proxy;
    }

    /// <summary>The next COMMIT's reply is lost, and its connection with it.</summary>
    public void LoseNextCommitReply() => Volatile.Write(ref _armed, 1);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var server = _server is UnixDomainSocketEndPoint
                ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                : new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await server.ConnectAsync(_server, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                // Stopped while a client was being connected (a pool opening one as the test ends), or the server is gone:
                // that client's connection fails, as it would without the proxy.
                client.Close();
                server.Close();
                continue;
            }
            lock (_sockets)
            {
                _sockets.Add(client);
                _sockets.Add(server);
            }

            _ = PumpAsync(client, server, watch: false);
            _ = PumpAsync(server, client, watch: true);
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool watch)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                if (watch && buffer.AsSpan(0, read).IndexOf(CommitComplete) >= 0 && Interlocked.Exchange(ref _armed, 0) == 1)
                {
                    Interlocked.Increment(ref _lost);
                    break;
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }

        from.Close();
        to.Close();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        lock (_sockets)
        {
            _sockets.ForEach(s => s.Close());
        }

        _stop.Dispose();
    }
}
