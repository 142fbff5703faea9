using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Longshore.Bench;

/// <summary>
/// POST /tasks/ throughput and latency with the embedded store, against GET /tasks/?limit=1 on the same server with
/// the same client concurrency as the baseline. Targets: ≥ 1,000 creates/s, p99 &lt; 20 ms.
/// All tasks share one family with max_concurrent 1, so one container runs while the rest are recorded.
/// </summary>
internal static class CreateBench
{
    private const int Workers = 16;

    public static async Task<IEnumerable<(string, string, string)>> RunAsync(string endpoint, int count)
    {
        var results = new List<(string, string, string)>();
        foreach (var synchronous in (string[])["FULL", "NORMAL"])
        {
            var family = "bench-create-" + Guid.NewGuid().ToString("N")[..8];
            await using (var server = await BenchServer.StartAsync(endpoint, capacity: 1, synchronous))
            {
                var task = BenchServer.Task(family, "sleep 3600", maxConcurrent: 1);
                await MeasureAsync(count / 10, () => server.Http.GetAsync("/tasks/?limit=1"));
                var (readRate, _, _) = await MeasureAsync(count, () => server.Http.GetAsync("/tasks/?limit=1"));
                var (rate, p50, p99) = await MeasureAsync(count, () => server.Http.PostAsJsonAsync("/tasks/", task));
                results.Add(($"creates, sqlite synchronous={synchronous}, {Workers} clients", $"{rate:0} /s", ">= 1000 /s"));
                results.Add(($"creates p50 / p99 ({synchronous})", string.Create(CultureInfo.InvariantCulture, $"{p50:0.0} / {p99:0.0} ms"), "p99 < 20 ms"));
                results.Add(($"creates / GET /tasks/?limit=1 throughput ({synchronous})", string.Create(CultureInfo.InvariantCulture, $"{rate / readRate:0.00}x"), $"baseline {readRate:0} reads/s"));
            }

            await RemoveContainersAsync(endpoint, family);
        }

        return results;
    }

    private static async Task<(double Rate, double P50, double P99)> MeasureAsync(int count, Func<Task<HttpResponseMessage>> request)
    {
        var latencies = new double[count];
        var next = -1;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Workers).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await request();
                response.EnsureSuccessStatusCode();
                latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
        }));
        var elapsed = watch.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        return (count / elapsed, latencies[count / 2], latencies[Math.Min(count - 1, (int)(count * 0.99))]);
    }

    private static async Task RemoveContainersAsync(string endpoint, string family)
    {
        using var client = new DockerClientBuilder().WithEndpoint(new Uri(endpoint)).Build();
        var containers = await client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"longshore.family={family}"] = true } },
        });
        foreach (var container in containers)
            await client.Containers.RemoveContainerAsync(container.ID, new ContainerRemoveParameters { Force = true });
    }
}
