using Gatehouse.Enforcement.Audit;
using Serilog;
using Serilog.Events;
using Serilog.Formatting;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// The live JSON-lines feed for SIEMs: every finished record, once it is durable in the audit store, is appended to the sink
/// file through Serilog (which owns buffering, rolling and file handling). The store stays the record of truth: a sink that
/// fails never fails a call.
/// </summary>
public sealed class AuditSink(IAuditStore inner, Serilog.ILogger sink, string path) : IAuditStore, IDisposable
{
    private const string Property = "AuditRecord";
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private DateTime _checkedDay;
    private long _writes;

    public static AuditSink ToFile(IAuditStore inner, string path)
    {
        // A new sink directory is the gateway's user's alone, so a day's file is private in it from its first byte.
        if (!OperatingSystem.IsWindows() && Path.GetDirectoryName(Path.GetFullPath(path)) is { } directory && !Directory.Exists(directory))
        {
            Directory.CreateDirectory(directory, OwnerOnly | UnixFileMode.UserExecute);
        }

        return new(inner, new LoggerConfiguration()
            .MinimumLevel.Information()
            // Shared: several processes write one sink (stdio gateways on one policy, the CLI's admin actions), so each write
            // goes at the file's end, under a lock shared by the processes of one session; each writing at its own
            // remembered offset, they wrote over each other's lines. A day past 1 GB goes on in a next file (Serilog would
            // otherwise drop every line after it until midnight).
            .WriteTo.File(
                new RecordLineFormatter(), path, flushToDiskInterval: TimeSpan.FromSeconds(1), rollingInterval: RollingInterval.Day, rollOnFileSizeLimit: true,
                retainedFileCountLimit: 31, shared: true)
            .CreateLogger(), path);
    }

    public ValueTask BeginAsync(AuditRecord record, CancellationToken cancellationToken) => inner.BeginAsync(record, cancellationToken);

    public async ValueTask CompleteAsync(AuditRecord record, CancellationToken cancellationToken)
    {
        await inner.CompleteAsync(record, cancellationToken).ConfigureAwait(false);
        sink.Write(new LogEvent(record.Time, LogEventLevel.Information, null, MessageTemplate.Empty, [new LogEventProperty(Property, new ScalarValue(AuditJson.Line(record.Storable())))]));
        MakeFilesPrivate();
    }

    public ValueTask<AuditRecord?> GetAsync(string id, CancellationToken cancellationToken) => inner.GetAsync(id, cancellationToken);

    public ValueTask<IReadOnlyList<AuditRecord>> ListAsync(AuditQuery query, CancellationToken cancellationToken) => inner.ListAsync(query, cancellationToken);

    public void Dispose() => (sink as IDisposable)?.Dispose();

    // Each day's file holds what the audit log does: readable by the gateway's user only. Shared mode takes no hook to make
    // a file private as it opens, so the sink's files are made so at its first write each day and every thousand writes
    // after (a file rolled at 1 GB); one another user's, or on a mount that takes no chmod, is left as it is.
    private void MakeFilesPrivate()
    {
        var today = DateTime.UtcNow.Date;
        if (OperatingSystem.IsWindows() || (today == _checkedDay && Interlocked.Increment(ref _writes) % 1000 != 0))
        {
            return;
        }

        _checkedDay = today;
        try
        {
            foreach (var file in Directory.GetFiles(Path.GetDirectoryName(Path.GetFullPath(path))!, $"{Path.GetFileNameWithoutExtension(path)}*{Path.GetExtension(path)}"))
            {
                try
                {
                    if (File.GetUnixFileMode(file) != OwnerOnly)
                    {
                        File.SetUnixFileMode(file, OwnerOnly);
                    }
                }
                catch (Exception e) when (e is UnauthorizedAccessException or IOException)
                {
                    // Another user's file, or a mount that takes no chmod: the sink goes on, as a failing sink never fails a call.
                }
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            // The directory cannot be read: the same.
        }
    }

    // Each event is exactly the record's JSON line, as audit export writes it.
    private sealed class RecordLineFormatter : ITextFormatter
    {
        public void Format(LogEvent logEvent, TextWriter output)
        {
            if (logEvent.Properties.TryGetValue(Property, out var value) && value is ScalarValue { Value: string line })
            {
                output.Write(line);
                output.Write('\n');
            }
        }
    }
}
