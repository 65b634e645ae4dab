using Gatehouse.Connectors.Postgres;
using Gatehouse.McpServer.Cli;
using Gatehouse.McpServer.Hosting;
using Serilog;

NpgsqlSettings.ApplySwitches();
Log.Logger = Logging.CreateLogger();
try
{
    return await CliApp.Build().Parse(args).InvokeAsync();
}
finally
{
    await Log.CloseAndFlushAsync();
}
