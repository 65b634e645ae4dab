using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Connectors.State;

/// <summary>
/// How a connection waits for a lock that another connection holds on the state file (the write lock, when several stdio
/// servers or the CLI write to one file). SQLite's own wait (busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50
/// and then 100 ms between tries, so a writer that finds the lock taken for the tenth of a millisecond a commit holds it
/// waits a millisecond or more, and one that loses several times in a row waits tens. This one sleeps 50 µs between its
/// first 20 tries, 250 µs up to the 100th, 1 ms up to the 200th and 5 ms after that, and gives up (SQLITE_BUSY, as before)
/// once the sleeps add up to the timeout. The budget is counted from the tries alone, as SQLite's own wait does: a sleep
/// overshoots a little, so the real wait is somewhat longer, never shorter.
/// </summary>
internal static unsafe partial class SqliteBusyWait
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Installs the wait on an open connection; false where it is not available (then use busy_timeout).</summary>
    /// <param name="timeout">How long to wait for one lock; <see cref="Timeout"/> unless a test asks for less.</param>
    public static bool TryInstall(SqliteConnection connection, TimeSpan? timeout = null)
    {
        // Only where the native library this binds to is the one Microsoft.Data.Sqlite runs on (its bundled e_sqlite3).
        if (!OperatingSystem.IsLinux() || SQLitePCL.raw.GetNativeLibraryName() != "e_sqlite3")
        {
            return false;
        }

        // The handler's state is the timeout itself, in microseconds, so nothing has to be kept alive for SQLite to call.
        var state = (IntPtr)(long)(timeout ?? Timeout).TotalMicroseconds;
        int result;
        try
        {
            result = SetBusyHandler(connection.Handle!.DangerousGetHandle(), &OnBusy, state);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }

        return result == 0 ? true : throw new InvalidOperationException($"sqlite3_busy_handler failed ({result})");
    }

    /// <summary>How long to sleep before the given try (counted from 0) for one lock.</summary>
    internal static uint DelayMicroseconds(int tries) => tries switch
    {
        < 20 => 50,
        < 100 => 250,
        < 200 => 1000,
        _ => 5000,
    };

    /// <summary>The sleeps before the given try, added up.</summary>
    internal static long SleptMicroseconds(int tries) => tries switch
    {
        <= 20 => 50L * tries,
        <= 100 => 1_000 + (250L * (tries - 20)),
        <= 200 => 21_000 + (1_000L * (tries - 100)),
        _ => 121_000 + (5_000L * (tries - 200)),
    };

    // Returns nonzero to try again, zero to give up (the statement then fails with SQLITE_BUSY).
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnBusy(IntPtr state, int tries)
    {
        if (SleptMicroseconds(tries) >= (long)state)
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
