using System.Diagnostics;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>Polls a condition until it holds, failing with context (e.g. the server's output) when it never does.</summary>
public static class Eventually
{
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string>? context = null)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > timeout)
                throw new TimeoutException($"condition not met within {timeout}\n{context?.Invoke()}");
            await Task.Delay(200);
        }
    }
}
