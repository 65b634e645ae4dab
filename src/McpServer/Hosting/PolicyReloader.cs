using System.Runtime.InteropServices;
using Gatehouse.Connectors.Postgres;
using Gatehouse.Enforcement.Audit;
using Gatehouse.Enforcement.Policy;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Hot reload: watches the policy file (and, as a fallback for file systems that do not report changes, reads it every
/// few seconds); SIGHUP forces a reload. A valid new version takes effect for the next call and is recorded in the audit
/// log with its hash; an invalid one, or one that changes settings only a restart applies, is refused with a logged error
/// and the policy in force stays. An applied (or forced) reload also drains the connection pools, so new connections
/// log in with the passwords as they are now.
/// </summary>
public sealed class PolicyReloader : BackgroundService
{
    /// <summary>How long the file must be quiet before it is read: editors and ConfigMap updates write in several steps.</summary>
    public static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(300);

    /// <summary>How often the file is read even when no change was reported (writes in place are seen this way).</summary>
    public static readonly TimeSpan Poll = TimeSpan.FromSeconds(2);

    private readonly SemaphoreSlim _wake = new(0);
    private readonly LivePolicy _live;
    private readonly PostgresTargets _targets;
    private readonly IAuditStore _audit;
    private readonly TimeProvider _time;
    private readonly ILogger<PolicyReloader> _logger;
    private readonly PosixSignalRegistration? _hangup;
    private int _forced;
    private string? _lastProblem;

    public PolicyReloader(LivePolicy live, PostgresTargets targets, IAuditStore audit, TimeProvider time, ILogger<PolicyReloader> logger)
    {
        (_live, _targets, _audit, _time, _logger) = (live, targets, audit, time, logger);

        // Held as long as the gateway lives, so a SIGHUP while it starts or stops never ends the process (the default).
        _hangup = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            Force();
        });
    }

    /// <summary>Reloads now, whether or not the file changed (what SIGHUP does).</summary>
    public void Force()
    {
        Interlocked.Exchange(ref _forced, 1);
        _wake.Release();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var path = _live.Current.SourcePath;
        using var watcher = Watch(path);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (await _wake.WaitAsync(Poll, stoppingToken))
                {
                    await Task.Delay(Settle, _time, stoppingToken);
                    while (_wake.CurrentCount > 0)
                    {
                        await _wake.WaitAsync(stoppingToken);
                    }
                }

                await ReloadAsync(path, forced: Interlocked.Exchange(ref _forced, 0) == 1, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // A reload must never take the gateway down: the policy in force stays.
                HostLog.ReloadCrashed(_logger, e);
            }
        }
    }

    private async Task ReloadAsync(string path, bool forced, CancellationToken cancellationToken)
    {
        if (forced)
        {
            // Asked for by hand: say what comes of it even when it was said before.
            _lastProblem = null;
        }

        await TakeUpAsync(path, forced, cancellationToken);
        if (forced)
        {
            // A SIGHUP drains the pools whatever became of the file.
            HostLog.PoolsDrained(_logger, _live.Current.Connections.Keys.Count(_targets.Drain), "SIGHUP");
        }
    }

    private async Task TakeUpAsync(string path, bool forced, CancellationToken cancellationToken)
    {
        string text;
        try
        {
            if (PolicyLoader.Oversized(path) is { } problem)
            {
                Refuse("oversized", $"{problem}; the policy in force ({_live.Current.Hash}) stays");
                return;
            }

            text = await File.ReadAllTextAsync(path, cancellationToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Refuse("unreadable", $"the policy file cannot be read ({e.Message}); the policy in force ({_live.Current.Hash}) stays");
            return;
        }

        var current = _live.Current;
        var hash = PolicyLoader.HashOf(text);
        if (hash == current.Hash)
        {
            _lastProblem = null;
            return;
        }

        if (!forced && _lastProblem?.StartsWith(hash, StringComparison.Ordinal) == true)
        {
            return;
        }

        GatewayPolicy next;
        try
        {
            next = PolicyLoader.Parse(text, path);
        }
        catch (PolicyException e)
        {
            await RefuseAsync(hash, $"version {hash} is not valid, so the policy in force ({current.Hash}) stays: {string.Join(" ", e.Errors)}");
            return;
        }

        if (_live.TryReplace(next) is { Count: > 0 } bound)
        {
            await RefuseAsync(hash, $"version {hash} changes {string.Join("; ", bound)}, which only a restart applies; the policy in force ({current.Hash}) stays");
            return;
        }

        _lastProblem = null;
        HostLog.PolicyReloaded(_logger, hash, current.Hash);
        await RecordAsync(hash, done: true, "policy.reloaded", $"policy {hash} is in force (was {current.Hash}); it decides every call from now on");
        if (!forced)
        {
            HostLog.PoolsDrained(_logger, next.Connections.Keys.Count(_targets.Drain), "policy reload");
        }
    }

    private async Task RefuseAsync(string hash, string reason)
    {
        if (Refuse(hash, reason))
        {
            await RecordAsync(hash, done: false, "policy.reload_refused", reason);
        }
    }

    // Logs a problem once, not at every poll while the file stays the same.
    private bool Refuse(string key, string reason)
    {
        var problem = $"{key} {reason}";
        if (problem == _lastProblem)
        {
            return false;
        }

        _lastProblem = problem;
        HostLog.ReloadRefused(_logger, reason);
        return true;
    }

    // The outcome stands whether or not its record can be written; a failed write is logged.
    private async Task RecordAsync(string hash, bool done, string rule, string reason)
    {
        try
        {
            await _audit.RecordAsync(_time.GetUtcNow(), "policy reload", "gateway", null, hash, done, rule, reason);
        }
        catch (Exception e)
        {
            HostLog.ReloadNotRecorded(_logger, e, hash);
        }
    }

    // The directory is watched, not the file: editors save by renaming, and Kubernetes swaps a symlink (..data). Only
    // names coming and going are watched: the state store often shares the directory, and every write to it would
    // otherwise wake the watcher. A file written in place is seen by the poll.
    private FileSystemWatcher? Watch(string path)
    {
        var name = Path.GetFileName(path);
        bool Ours(string? changed) => changed is not null && (changed == name || changed.StartsWith("..", StringComparison.Ordinal));
        try
        {
            var watcher = new FileSystemWatcher(Path.GetDirectoryName(path)!)
            {
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName,
            };
            FileSystemEventHandler changed = (_, e) =>
            {
                if (Ours(e.Name))
                {
                    _wake.Release();
                }
            };
            watcher.Changed += changed;
            watcher.Created += changed;
            watcher.Deleted += changed;
            watcher.Renamed += (_, e) =>
            {
                if (Ours(e.Name) || Ours(e.OldName))
                {
                    _wake.Release();
                }
            };
            watcher.EnableRaisingEvents = true;
            return watcher;
        }
        catch (Exception e) when (e is IOException or ArgumentException or PlatformNotSupportedException)
        {
            // Polling still sees changes, only later.
            HostLog.WatchUnavailable(_logger, e.Message, Poll.TotalSeconds);
            return null;
        }
    }

    public override void Dispose()
    {
        _hangup?.Dispose();
        _wake.Dispose();
        base.Dispose();
    }
}
