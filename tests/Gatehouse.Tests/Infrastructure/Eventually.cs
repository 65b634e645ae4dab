namespace Gatehouse.Tests.Infrastructure;

/// <summary>Waiting for something another process does (a gateway, a browser, PostgreSQL) without a fixed sleep.</summary>
public static class Eventually
{
    /// <summary>Polls every 100 ms until the condition holds, and fails the test if it still does not after <paramref name="within"/>.</summary>
    public static async Task HoldsAsync(Func<Task<bool>> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"the condition did not hold within {within.TotalSeconds:0.#} s");
            await Task.Delay(100);
        }
    }
}
