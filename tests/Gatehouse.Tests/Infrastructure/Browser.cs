using Microsoft.Playwright;

namespace Gatehouse.Tests.Infrastructure;

/// <summary>
/// Debian's Chromium, headless, driven by Playwright: the browser is the system one (no download exists here), started
/// once for the test class. Screenshots go to <see cref="ArtifactsDirectory"/>.
/// </summary>
public sealed class Browser : IAsyncLifetime
{
    public const string Executable = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Chromium { get; private set; } = null!;

    /// <summary>Where screenshots are saved: GATEHOUSE_ARTIFACTS, or artifacts/ beside the test binaries.</summary>
    public static string ArtifactsDirectory { get; } = Environment.GetEnvironmentVariable("GATEHOUSE_ARTIFACTS") is { Length: > 0 } dir
        ? dir
        : Path.Combine(AppContext.BaseDirectory, "artifacts");

    public async Task InitializeAsync()
    {
        if (!File.Exists(Executable))
        {
            throw new InvalidOperationException($"The browser tests need Chromium at {Executable}: apt-get install chromium (.ci/run installs it).");
        }

        _playwright = await Playwright.CreateAsync();
        Chromium = await _playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Executable,
            Headless = true,
            // Without the network-quieting flags Chromium keeps calling out, and this machine refuses every such connection.
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
    }

    public async Task DisposeAsync()
    {
        if (Chromium is not null)
        {
            await Chromium.DisposeAsync();
        }

        _playwright?.Dispose();
    }

    public static async Task ScreenshotAsync(IPage page, string name)
    {
        Directory.CreateDirectory(Path.Combine(ArtifactsDirectory, "console"));
        await page.ScreenshotAsync(new() { Path = Path.Combine(ArtifactsDirectory, "console", name + ".png"), FullPage = true });
    }
}
