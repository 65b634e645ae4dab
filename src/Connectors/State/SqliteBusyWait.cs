using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Connectors.State;

/// <summary>
/// How a connection waits for a lock that another process holds on the state file (the write lock, when several stdio
/// servers or the CLI write to one file). SQLite's own wait (busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25 ms and on
/// between tries, so a writer that finds the lock taken for the 0.1 ms a commit holds it waits a millisecond or more,
/// and one that loses several times in a row waits tens. This one tries again every 50 µs for the first millisecond,
/// then every 250 µs, then every millisecond, and gives up (SQLITE_BUSY, as before) after <see cref="Timeout"/>.
/// </summary>
internal static unsafe partial class SqliteBusyWait
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // When the wait for the current lock began: every try for one lock runs on the thread that asked for it.
    [ThreadStatic]
    private static long t_since;

    /// <summary>Installs the wait on an open connection; false where it is not available (then use busy_timeout).</summary>
    /// <param name="timeout">How long to wait for one lock; <see cref="Timeout"/> unless a test asks for less.</param>
    public static bool TryInstall(SqliteConnection connection, TimeSpan? timeout = null)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        // The handler's state is the timeout itself, in milliseconds, so nothing has to be kept alive for SQLite to call.
        var state = (IntPtr)(long)(timeout ?? Timeout).TotalMilliseconds;
        var result = SetBusyHandler(connection.Handle!.DangerousGetHandle(), &OnBusy, state);
        return result == 0 ? true : throw new InvalidOperationException($"sqlite3_busy_handler failed ({result})");
    }

    /// <summary>How long to wait before the given try (counted from 0) for one lock.</summary>
    internal static uint DelayMicroseconds(int tries) => tries switch
    {
        < 20 => 50,
        < 100 => 250,
        _ => 1000,
    };

    // Returns nonzero to try again, zero to give up (the statement then fails with SQLITE_BUSY).
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnBusy(IntPtr state, int tries)
    {
        if (tries == 0)
        {
            t_since = Stopwatch.GetTimestamp();
        }
        else if (Stopwatch.GetElapsedTime(t_since).TotalMilliseconds >= (long)state)
        {
            return 0;
        }

        _ = Sleep(DelayMicroseconds(tries));
        return 1;
    }

    [LibraryImport("e_sqlite3", EntryPoint = "sqlite3_busy_handler")]
    private static partial int SetBusyHandler(IntPtr db, delegate* unmanaged[Cdecl]<IntPtr, int, int> handler, IntPtr state);

    [LibraryImport("libc", EntryPoint = "usleep")]
    private static partial int Sleep(uint microseconds);
}
