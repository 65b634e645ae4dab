using System.Runtime.CompilerServices;
using Gatehouse.Connectors.Postgres;

namespace Gatehouse.Tests.Infrastructure;

internal static class NpgsqlSwitches
{
    // Npgsql reads its switches once, when first used: set them before any test can touch it, whichever runs first.
    [ModuleInitializer]
    internal static void Apply() => NpgsqlSettings.ApplySwitches();
}
