using Serilog;
using Serilog.Events;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Serilog setup: everything to stderr, because stdout carries only JSON-RPC in stdio mode. Written by a background
/// thread, so calls never queue on the console's lock; when its buffer is full, writers wait rather than lose lines.
/// </summary>
public static class Logging
{
    public static Serilog.ILogger CreateLogger(bool verbose = false) =>
        new LoggerConfiguration()
            .MinimumLevel.Is(verbose ? LogEventLevel.Debug : LogEventLevel.Information)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
            .MinimumLevel.Override("ModelContextProtocol", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.AspNetCore.DataProtection", LogEventLevel.Error)
            .Enrich.FromLogContext()
            .WriteTo.Async(
                sink => sink.Console(standardErrorFromLevel: LogEventLevel.Verbose, outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}"),
                blockWhenFull: true)
            .CreateLogger();
}
