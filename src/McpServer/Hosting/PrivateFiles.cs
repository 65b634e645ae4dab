using System.Runtime.InteropServices;

namespace Gatehouse.McpServer.Hosting;

/// <summary>
/// Makes every file the process creates from now on readable by its own user only (umask 077). The sink's daily files hold
/// what the audit log does, and Serilog creates them in shared mode, which takes no lifecycle hook to make each one private
/// as it opens; the state file, keys and exports are made private explicitly besides.
/// </summary>
internal static class PrivateFiles
{
    private const uint GroupAndOthers = 0b000_111_111;

    public static void Apply()
    {
        if (!OperatingSystem.IsWindows())
        {
            _ = umask(GroupAndOthers);
        }
    }

    [DllImport("libc", EntryPoint = "umask")]
    private static extern uint umask(uint mask);
}
