using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Longshore.Bench;

/// <summary>
/// N trivial containers through Longshore (POST → TASK_FINISHED) against the same N run directly on the engine API
/// (create, start, wait, read logs, remove) with the same concurrency. Target: Longshore within 1.15× of direct.
/// </summary>
internal static class LaunchBench
{
    public static async Task<IEnumerable<(string, string, string)>> RunAsync(string endpoint, int count, int concurrency)
    {
        var direct = TimeSpan.MaxValue;
        var longshore = TimeSpan.MaxValue;
        // Alternate and keep each side's best of two, so a warm-up or a noisy moment does not decide the ratio.
        for (var round = 1; round <= 2; round++)
        {
            var d = await DirectAsync(endpoint, count, concurrency);
            var l = await LongshoreAsync(endpoint, count, concurrency);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"launch round {round}: direct {d.TotalSeconds:0.00} s, longshore {l.TotalSeconds:0.00} s"));
            direct = d < direct ? d : direct;
            longshore = l < longshore ? l : longshore;
        }

        var ratio = longshore / direct;
        return
        [
            ($"launch {count} containers, concurrency {concurrency}: direct", $"{direct.TotalSeconds:0.00} s", "baseline"),
            ("launch: longshore", $"{longshore.TotalSeconds:0.00} s", ""),
            ("launch: longshore / direct", string.Create(CultureInfo.InvariantCulture, $"{ratio:0.00}x"), "<= 1.15x"),
        ];
    }

    private static async Task<TimeSpan> DirectAsync(string endpoint, int count, int concurrency)
    {
        using var client = new DockerClientBuilder().WithEndpoint(new Uri(endpoint)).WithTimeout(Timeout.InfiniteTimeSpan).Build();
        using var gate = new SemaphoreSlim(concurrency);
        var run = Guid.NewGuid().ToString("N")[..8];
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                var created = await client.Containers.CreateContainerAsync(new CreateContainerParameters
                {
                    Name = $"bench-direct-{run}-{i}",
                    Image = "busybox",
                    Entrypoint = ["/bin/sh", "-c"],
                    Cmd = ["true"],
                    Labels = new Dictionary<string, string> { ["longshore.bench"] = run },
                    HostConfig = new HostConfig { Memory = 32L * 1024 * 1024, MemorySwap = 32L * 1024 * 1024, CPUPeriod = 100_000, CPUQuota = 50_000 },
                });
                await client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
                await client.Containers.WaitContainerAsync(created.ID);
                await client.Containers.InspectContainerAsync(created.ID);
                using (var logs = await client.Containers.GetContainerLogsAsync(created.ID, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true }))
                    await logs.ReadOutputToEndAsync(CancellationToken.None);
                await client.Containers.RemoveContainerAsync(created.ID, new ContainerRemoveParameters { Force = true });
            }
            finally
            {
                gate.Release();
            }
        }));
        return watch.Elapsed;
    }

    private static async Task<TimeSpan> LongshoreAsync(string endpoint, int count, int concurrency)
    {
        await using var server = await BenchServer.StartAsync(endpoint, concurrency);
        var family = "bench-launch-" + Guid.NewGuid().ToString("N")[..8];
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, count).Select(_ => server.PostAsync(BenchServer.Task(family, "true", count))));
        while (true)
        {
            var runs = JsonDocument.Parse(await server.Http.GetStringAsync($"/tasks/?id={family}&limit=1000")).RootElement;
            var finished = runs.EnumerateArray().Count(r => r.GetProperty("mesos_state").GetString() == "TASK_FINISHED");
            if (finished == count)
                break;
            if (runs.EnumerateArray().Any(r => r.GetProperty("mesos_state").GetString() is "TASK_FAILED" or "TASK_LOST" or "TASK_DROPPED"))
                throw new InvalidOperationException("a benchmark task failed: " + runs);
            await Task.Delay(20);
        }

        return watch.Elapsed;
    }
}
