using System.Diagnostics;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>Which of several servers on one store leads, as each one's <c>/healthz</c> says.</summary>
public static class Leaders
{
    /// <summary>The first server that says it leads a term above <paramref name="afterTerm"/>, and that term.</summary>
    public static async Task<(LongshoreServer Leader, long Term)> WaitAsync(IReadOnlyList<LongshoreServer> servers, TimeSpan timeout, long afterTerm = 0)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            foreach (var server in servers)
            {
                if (await server.HealthAsync() is { } health && health.GetProperty("leader").GetBoolean() && health.GetProperty("term").GetInt64() > afterTerm)
                    return (server, health.GetProperty("term").GetInt64());
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"no instance led a term above {afterTerm} within {timeout}:\n" + string.Join("\n---\n", servers.Select(s => s.Output)));
    }
}
