using System.CommandLine;
using System.Globalization;
using Gatehouse.Enforcement.Policy;
using Gatehouse.McpServer.Hosting;

namespace Gatehouse.McpServer.Cli;

public static partial class AuditCommand
{
    private static Command Export()
    {
        var config = CliApp.ConfigOption();
        var since = new Option<string?>("--since") { Description = "From this time: a window such as 7d, or an ISO 8601 time such as 2026-12-01T00:00:00Z." };
        var until = new Option<string?>("--until") { Description = "Up to (not including) this time: a window back from now such as 1h, or an ISO 8601 time." };
        var format = new Option<string>("--format") { Description = "Output format: jsonl (one record per line, as the live sink writes them).", DefaultValueFactory = _ => "jsonl" };
        var output = new Option<string?>("--output", "-o") { Description = "Write to this file instead of standard output." };
        var command = new Command("export", "Export audit records, oldest first, for a SIEM or an archive.") { config, since, until, format, output };
        command.SetAction(CliApp.Guarded(async (parse, cancellationToken) =>
        {
            if (parse.GetValue(format) is not "jsonl")
            {
                throw new CliException($"--format {parse.GetValue(format)} is not supported; use jsonl");
            }

            var now = DateTimeOffset.UtcNow;
            var from = parse.GetValue(since) is { } s ? PointInTime(s, now, "--since") : (DateTimeOffset?)null;
            var to = parse.GetValue(until) is { } u ? PointInTime(u, now, "--until") : (DateTimeOffset?)null;
            var (_, state) = await CliApp.LoadGatewayAsync(parse.GetValue(config)!, cancellationToken);
            var path = parse.GetValue(output);
            // Console.Out is flushed, never disposed; a file is closed when the export ends.
            await using var file = path is null ? null : new StreamWriter(OpenOwnerOnly(path));
            var writer = file ?? Console.Out;
            var count = 0;
            await foreach (var record in state.Audit.ExportAsync(from, to, cancellationToken))
            {
                await writer.WriteAsync(AuditJson.Line(record) + "\n");
                count++;
            }

            await writer.FlushAsync(cancellationToken);
            await Console.Error.WriteLineAsync($"Exported {count} record(s).");
            return 0;
        }));
        return command;
    }

    // "7d" means seven days ago; anything else must be an absolute ISO 8601 time.
    private static DateTimeOffset PointInTime(string text, DateTimeOffset now, string option)
    {
        if (Durations.TryParse(text, out var window))
        {
            return now - window;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
            ? time
            : throw new CliException($"{option} takes a window such as 7d or an ISO 8601 time such as 2026-12-01T00:00:00Z (got '{text}')");
    }

    // An export holds what the audit log does: readable by its writer only. A new file is created so; an existing one is
    // made so through the open handle, emptied, before anything is written to it.
    private static FileStream OpenOwnerOnly(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (OperatingSystem.IsWindows())
        {
            return new FileStream(path, options);
        }

        options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        var stream = new FileStream(path, options);
        File.SetUnixFileMode(stream.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return stream;
    }
}
