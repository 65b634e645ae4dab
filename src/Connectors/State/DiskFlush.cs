using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Gatehouse.Connectors.State;

/// <summary>
/// fsync(2) on an open file, failing on every error. .NET's own <see cref="RandomAccess.FlushToDisk"/> returns quietly when
/// the file system answers that it cannot flush (EINVAL, EROFS, ENOTSUP: some FUSE and network mounts), which suits a
/// cache but not a record promised to survive a power cut: there, a file that cannot be flushed is a failure.
/// </summary>
internal static partial class DiskFlush
{
    private const int Interrupted = 4; // EINTR: a signal arrived before the flush finished; it is tried again.

    /// <summary>Returns once the file's data is on the disk; throws <see cref="IOException"/> naming the error otherwise.</summary>
    public static void Flush(SafeFileHandle file)
    {
        while (Sync(file) != 0)
        {
            var error = Marshal.GetLastPInvokeError();
            if (error != Interrupted)
            {
                throw new IOException($"fsync failed: {Marshal.GetPInvokeErrorMessage(error)} (errno {error})", error);
            }
        }
    }

    // The marshaller holds a reference on the handle for the call, so a concurrent close waits for the flush to return.
    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Sync(SafeFileHandle file);
}
