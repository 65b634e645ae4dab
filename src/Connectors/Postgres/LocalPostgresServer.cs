using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Gatehouse.Connectors.Postgres;

/// <summary>
/// A throwaway PostgreSQL server (initdb + pg_ctl) on loopback and a free port, for the demo and the tests.
/// PostgreSQL refuses to run as root, so under root it runs as the 'postgres' user via runuser.
/// </summary>
public sealed class LocalPostgresServer : IAsyncDisposable
{
    private readonly string _binDir;
    private bool _stopped;

    private LocalPostgresServer(string binDir, string directory, int port)
    {
        _binDir = binDir;
        Directory = directory;
        Port = port;
    }

    public string Directory { get; }

    public int Port { get; }

    public string DataDirectory => Path.Combine(Directory, "data");

    public string SocketDirectory => Path.Combine(Directory, "socket");

    /// <summary>Superuser access over the Unix socket (trust); TCP connections need a password.</summary>
    public string AdminConnectionString => $"Host={SocketDirectory};Port={Port};Username=postgres;Database=postgres;Pooling=false";

    /// <summary>Starts a server from <paramref name="binDirectory"/>'s initdb and pg_ctl, or else the installed ones.</summary>
    public static async Task<LocalPostgresServer> StartAsync(string directory, CancellationToken cancellationToken, string? binDirectory = null)
    {
        var binDir = binDirectory ?? FindBinaries();
        System.IO.Directory.CreateDirectory(directory);
        var server = new LocalPostgresServer(binDir, Path.GetFullPath(directory), FreePort());
        await server.InitAndStartAsync(cancellationToken).ConfigureAwait(false);
        return server;
    }

    private async Task InitAndStartAsync(CancellationToken cancellationToken)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new LocalPostgresException("The local PostgreSQL server is supported on Linux and macOS only.");
        }

        var traversable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        File.SetUnixFileMode(Directory, File.GetUnixFileMode(Directory) | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        System.IO.Directory.CreateDirectory(DataDirectory, traversable);
        System.IO.Directory.CreateDirectory(SocketDirectory, traversable);
        if (Environment.IsPrivilegedProcess)
        {
            await RunAsync("chown", ["-R", "postgres:postgres", DataDirectory, SocketDirectory], asPostgres: false, cancellationToken).ConfigureAwait(false);
        }

        await RunAsync(Path.Combine(_binDir, "initdb"), ["-D", DataDirectory, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"], asPostgres: true, cancellationToken).ConfigureAwait(false);
        var options = $"-p {Port} -k {SocketDirectory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200";
        await RunAsync(Path.Combine(_binDir, "pg_ctl"), ["-D", DataDirectory, "-w", "-t", "60", "-l", Path.Combine(DataDirectory, "server.log"), "-o", options, "start"], asPostgres: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the server immediately (fast shutdown). Safe to call more than once.</summary>
    public async Task StopAsync()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        await RunAsync(Path.Combine(_binDir, "pg_ctl"), ["-D", DataDirectory, "-w", "-m", "fast", "stop"], asPostgres: true, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Starts a server stopped with <see cref="StopAsync"/> again, on the same port and data.</summary>
    public async Task RestartAsync()
    {
        var options = $"-p {Port} -k {SocketDirectory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200";
        await RunAsync(Path.Combine(_binDir, "pg_ctl"), ["-D", DataDirectory, "-w", "-t", "60", "-l", Path.Combine(DataDirectory, "server.log"), "-o", options, "start"], asPostgres: true, CancellationToken.None).ConfigureAwait(false);
        _stopped = false;
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    /// <summary>Names the folder of initdb and pg_ctl to use instead of the installed ones (another PostgreSQL version, say).</summary>
    public const string BinariesVariable = "GATEHOUSE_PG_BIN";

    private static string FindBinaries()
    {
        var chosen = Environment.GetEnvironmentVariable(BinariesVariable);
        if (!string.IsNullOrWhiteSpace(chosen))
        {
            chosen = Path.GetFullPath(chosen);
            return HasServerPrograms(chosen)
                ? chosen
                : throw new LocalPostgresException($"{BinariesVariable} is '{chosen}', but that folder does not hold initdb and pg_ctl. Name the 'bin' folder of a PostgreSQL installation, or unset it to use the installed one.");
        }

        var candidates = new List<string>();
        if (System.IO.Directory.Exists("/usr/lib/postgresql"))
        {
            candidates.AddRange(System.IO.Directory.GetDirectories("/usr/lib/postgresql")
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0)
                .Select(d => Path.Combine(d, "bin")));
        }

        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries));
        return candidates.FirstOrDefault(HasServerPrograms)
            ?? throw new LocalPostgresException("PostgreSQL's server programs (initdb, pg_ctl) were not found. Install them, for example with: apt-get install postgresql");
    }

    private static bool HasServerPrograms(string directory) =>
        File.Exists(Path.Combine(directory, "initdb")) && File.Exists(Path.Combine(directory, "pg_ctl"));

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task RunAsync(string program, IReadOnlyList<string> arguments, bool asPostgres, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo
        {
            FileName = asPostgres && Environment.IsPrivilegedProcess ? "runuser" : program,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = "/",
        };
        if (asPostgres && Environment.IsPrivilegedProcess)
        {
            foreach (var a in new[] { "-u", "postgres", "--", program })
            {
                start.ArgumentList.Add(a);
            }
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new LocalPostgresException($"Could not start {program}.");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new LocalPostgresException($"{Path.GetFileName(program)} failed (exit {process.ExitCode}): {(await errors.ConfigureAwait(false)).Trim()} {(await output.ConfigureAwait(false)).Trim()}");
        }
    }
}

/// <summary>The local PostgreSQL server could not be set up or started.</summary>
public sealed class LocalPostgresException(string message) : Exception(message);
