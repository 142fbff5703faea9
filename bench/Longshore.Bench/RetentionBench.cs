using System.Diagnostics;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Microsoft.Extensions.Logging.Abstractions;

namespace Longshore.Bench;

/// <summary>
/// Retention at volume, per store: N runs seeded through the store in 1,000 task ids, each holding 40 % runs that ended
/// two days ago, 50 % that ended an hour ago and 10 % still running; then one pass of the real <see cref="RunRetention"/>
/// with the server's defaults (1 day, 100 per task id, its batches and pauses) while a client keeps doing what the
/// scheduler and the API do: create a run, stage it, read a page. Baseline in the same run: the same client on the same
/// store, before the pass.
/// </summary>
internal static class RetentionBench
{
    private const int Families = 1000;

    public static async Task<IEnumerable<(string, string, string)>> RunAsync(int runs, IReadOnlyList<string> kinds)
    {
        var results = new List<(string, string, string)>();
        foreach (var kind in kinds)
        {
            await StoreBench.WithStoreAsync(kind, async store =>
            {
                var now = TimeProvider.System.GetUtcNow();
                var seeding = Stopwatch.StartNew();
                var active = await SeedAsync(store, runs, now);
                results.Add(($"{kind}: seed {runs} runs", $"{seeding.Elapsed.TotalSeconds:0} s ({runs / seeding.Elapsed.TotalSeconds:0} /s)", ""));

                var idle = await ClientAsync(store, until: Task.Delay(TimeSpan.FromSeconds(15)));
                var retention = new RunRetention(store, new RetentionOptions(), TimeProvider.System, NullLogger<RunRetention>.Instance);
                var pruning = Stopwatch.StartNew();
                var pass = retention.PassAsync();
                var busy = await ClientAsync(store, until: pass);
                var (byAge, byCount) = await pass;
                var pruned = byAge + byCount;
                results.Add(($"{kind}: pass at {runs} runs: deleted by age / by count", $"{byAge} / {byCount}", ""));
                results.Add(($"{kind}: pass time", $"{pruning.Elapsed.TotalSeconds:0.0} s ({pruned / pruning.Elapsed.TotalSeconds:0} runs/s)", ""));
                results.Add(($"{kind}: client op p50 / p99, idle store", $"{idle.P50:0.0} / {idle.P99:0.0} ms", "baseline"));
                results.Add(($"{kind}: client op p50 / p99, during the pass", $"{busy.P50:0.0} / {busy.P99:0.0} ms", ""));
                results.Add(($"{kind}: during / idle, p50 and p99", $"{busy.P50 / idle.P50:0.00}x / {busy.P99 / idle.P99:0.00}x", "p99 <= 3x"));

                var again = Stopwatch.StartNew();
                var second = await retention.PassAsync();
                results.Add(($"{kind}: next pass, nothing left to delete", $"{again.Elapsed.TotalMilliseconds:0} ms (deleted {second.ByAge + second.ByCount})", "well under the 60 s interval"));

                var left = await store.CountByStateAsync();
                var stillActive = await Task.WhenAll(active.Select(id => store.GetAsync(id)));
                var ended = left.Where(pair => pair.Key.IsTerminal()).Sum(pair => pair.Value);
                var check = stillActive.All(run => run is { State: TaskState.Running }) && ended <= Families * 100L
                    ? "ok" : $"WRONG: {ended} ended left, {stillActive.Count(run => run is null)} active runs gone";
                results.Add(($"{kind}: ended runs left (<= 100 per task id), active kept", $"{ended}, {stillActive.Length} ({check})", ""));
                return TimeSpan.Zero;
            });
        }

        return results;
    }

    /// <summary>Inserts the runs in their final state (one write each, 32 writers); returns the ids of the running ones.</summary>
    private static async Task<List<string>> SeedAsync(IStateStore store, int runs, DateTimeOffset now)
    {
        var active = new List<string>();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < runs)
            {
                var (state, age) = (i % 10) switch
                {
                    < 4 => (i % 7 == 0 ? TaskState.Failed : TaskState.Finished, TimeSpan.FromDays(2)),
                    < 9 => (TaskState.Finished, TimeSpan.FromHours(1)),
                    _ => (TaskState.Running, TimeSpan.FromDays(3)),
                };
                var run = NewRun($"ret{i / 10 % Families}", now - age) with { State = state };
                await store.InsertAsync(run);
                if (state == TaskState.Running && i % 100 == 9)
                {
                    lock (active)
                        active.Add(run.MesosId);
                }
            }
        })));
        return active;
    }

    /// <summary>One client doing, until <paramref name="until"/> ends, what the scheduler and the API do; each op timed.</summary>
    private static async Task<(double P50, double P99)> ClientAsync(IStateStore store, Task until)
    {
        var times = new List<double>();
        while (!until.IsCompleted)
        {
            var watch = Stopwatch.StartNew();
            var run = NewRun("client", TimeProvider.System.GetUtcNow());
            await store.InsertAsync(run);
            await store.TryTransitionAsync(new RunTransition(run.MesosId, [TaskState.WaitingOnOffers], TaskState.Staging, TimeProvider.System.GetUtcNow()));
            await store.ListAsync(new RunQuery(50, FamilyId: "ret7"));
            times.Add(watch.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return times.Count == 0 ? (0, 0) : (times[times.Count / 2], times[Math.Min(times.Count - 1, (int)(times.Count * 0.99))]);
    }

    private static TaskRun NewRun(string family, DateTimeOffset at) => TaskRun.CreateFirst(new TaskDefinition
    {
        Id = family,
        Cmd = "true",
        Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } },
    }, Guid.NewGuid(), at);
}
