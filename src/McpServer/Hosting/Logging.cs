using Serilog;
using Serilog.Events;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Serilog setup: everything to stderr, because stdout carries only JSON-RPC in stdio mode. Written by a background
/// thread, so calls never queue on the console's lock; when its buffer is full, writers wait rather than lose lines.
/// </summary>
public static class Logging
{
    /// <summary>The environment variable that sets the level: debug also logs every allowed call (they are all in the audit log).</summary>
    public const string LevelVariable = "GATEHOUSE_LOG_LEVEL";

    public static Serilog.ILogger CreateLogger(bool verbose = false)
    {
        var named = Environment.GetEnvironmentVariable(LevelVariable);
        var level = Level(named);
        var logger = new LoggerConfiguration()
            .MinimumLevel.Is(verbose ? LogEventLevel.Debug : level ?? LogEventLevel.Information)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
            .MinimumLevel.Override("ModelContextProtocol", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.AspNetCore.DataProtection", LogEventLevel.Error)
            .Enrich.FromLogContext()
            .WriteTo.Async(
                sink => sink.Console(standardErrorFromLevel: LogEventLevel.Verbose, outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}"),
                blockWhenFull: true)
            .CreateLogger();
        if (level is null && !string.IsNullOrWhiteSpace(named))
        {
            logger.Warning("{Variable} is {Value}, which is not a level (debug, information, warning or error); logging at information", LevelVariable, named.Length > 40 ? named[..40] + "…" : named);
        }

        return logger;
    }

    /// <summary>
    /// Makes <see cref="Log.Logger"/> the host's only log provider. Through the host's logger factory, which keeps one logger
    /// per category: Serilog's own factory builds a new one (and its caches) each time one is asked for, and the MCP SDK
    /// asks on every stateless HTTP request. Levels are Serilog's alone, so the factory lets everything through to it.
    /// </summary>
    public static void Attach(Microsoft.Extensions.Logging.ILoggingBuilder logging)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(Microsoft.Extensions.Logging.LogLevel.Trace);
        logging.AddSerilog(Log.Logger, dispose: false);
    }

    /// <summary>debug, information, warning or error (any case); null for anything else.</summary>
    internal static LogEventLevel? Level(string? name) =>
        name?.Trim().ToLowerInvariant() switch
        {
            "debug" => LogEventLevel.Debug,
            "information" or "info" => LogEventLevel.Information,
            "warning" => LogEventLevel.Warning,
            "error" => LogEventLevel.Error,
            _ => null,
        };
}
