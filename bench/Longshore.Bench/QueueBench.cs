using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Sources.Redis;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Longshore.Bench;

/// <summary>
/// Queue throughput and latency with a Redis list. <b>Recording</b>: N messages turned into N recorded tasks by the
/// real poll loop, source and embedded store (FULL: every commit fsynced), with no engine; baseline: the same source
/// taking the same N messages without recording them. Target ≥ 10,000 messages/s. <b>Latency</b> on the real engine:
/// messages pushed one at a time, from push and from the poll (the run's creation) to TASK_RUNNING, p50/p99; baseline:
/// the same tasks posted straight to <c>POST /tasks/</c> on the same server, from the request to TASK_RUNNING.
/// </summary>
internal static class QueueBench
{
    public static async Task<IEnumerable<(string, string, string)>> RunAsync(string endpoint, string redis, int messages, int latencyMessages, IReadOnlyList<string> stores)
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis);
        var results = new List<(string, string, string)>();
        var (baselineResults, baseline) = await SourceAloneAsync(connection, redis, messages);
        results.AddRange(baselineResults);
        foreach (var kind in stores.Where(k => k is "sqlite" or "postgres"))
            results.AddRange(await StoreBench.WithResultsAsync(kind, store => EndToEndAsync(connection, redis, messages, kind, store, baseline)));
        foreach (var kind in stores.Where(k => k is "sqlite" or "postgres"))
            results.AddRange(await PostThroughputAsync(endpoint, kind, messages));
        if (latencyMessages > 0)
            results.AddRange(await LatencyAsync(endpoint, connection, redis, latencyMessages));
        return results;
    }

    private static StoredQueue Queue(string id, string redis, string list) => new()
    {
        Id = id,
        // As the POST /tasks/ phase does: the task id's own cap (10 by default) would otherwise hold the queue to 10 runs at once.
        Template = new TaskDefinition { Id = id, Cmd = "true", MaxConcurrent = 10_000, Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } },
        CreatedAt = TimeProvider.System.GetUtcNow(),
        Block = new QueueBlock
        {
            Type = "redis",
            MaxConcurrent = 100_000,
            Settings = new() { ["redis"] = JsonSerializer.SerializeToElement(RedisSettings(redis, list)) },
        },
    };

    private static Dictionary<string, string> RedisSettings(string redis, string list) =>
        new() { ["host"] = redis.Split(':')[0], ["port"] = redis.Split(':')[1], ["name"] = list };

    private static async Task FillAsync(IDatabase db, string list, int count)
    {
        for (var start = 0; start < count; start += 10_000)
            await db.ListRightPushAsync(list, Enumerable.Range(start, Math.Min(10_000, count - start)).Select(i => (RedisValue)$"message-{i}").ToArray());
    }

    /// <summary>Baseline: the source alone takes every message, nothing is recorded.</summary>
    private static async Task<(IEnumerable<(string, string, string)>, TimeSpan)> SourceAloneAsync(ConnectionMultiplexer connection, string redis, int count)
    {
        var db = connection.GetDatabase();
        var run = Guid.NewGuid().ToString("N")[..8];
        await using var source = new RedisSource();
        var baselineQueue = Queue("bench-take-" + run, redis, "bench:take:" + run);
        await FillAsync(db, "bench:take:" + run, count);
        var watch = Stopwatch.StartNew();
        var taken = 0;
        while (taken < count)
            taken += (await source.PollAsync(baselineQueue, new Dictionary<string, string>(), count - taken, TimeProvider.System.GetUtcNow())).Messages.Count;
        var baseline = watch.Elapsed;
        await db.KeyDeleteAsync([(RedisKey)("bench:take:" + run), (RedisKey)("longshore:processing:" + baselineQueue.Id)]);
        return ([($"redis: take {count} messages, source alone", $"{baseline.TotalSeconds:0.00} s ({count / baseline.TotalSeconds:0} /s)", "baseline")], baseline);
    }

    /// <summary>
    /// The real pipeline, engine excluded: the poll loop records tasks, the scheduler launches them on the no-op engine
    /// (capacity 256), they finish, and the loop acknowledges their messages.
    /// </summary>
    private static async Task<IEnumerable<(string, string, string)>> EndToEndAsync(ConnectionMultiplexer connection, string redis, int count, string kind,
        IStateStore store, TimeSpan baseline)
    {
        var db = connection.GetDatabase();
        var run = Guid.NewGuid().ToString("N")[..8];
        await using var source = new RedisSource();
        using var stop = new CancellationTokenSource();
        var queue = Queue("bench-record-" + run, redis, "bench:record:" + run);
        var list = "bench:record:" + run;
        var processing = "longshore:processing:" + queue.Id;
        await store.CreateQueueAsync(queue);
        using var metrics = new SchedulerMetrics();
        var scheduler = new Scheduler(store, new NoopBackend(TimeProvider.System), new RetryPolicy(new RetryOptions(), Random.Shared.NextDouble),
            new SchedulerOptions { Capacity = 256 }, TimeProvider.System, Guid.NewGuid, metrics, NullLogger<Scheduler>.Instance);
        using var poller = new QueuePoller(store, scheduler, [source], TimeProvider.System, Guid.NewGuid, NullLogger<QueuePoller>.Instance);
        // Ends are counted as the scheduler reports them, not by counting the store: a count by state every few milliseconds
        // is a scan of the whole table that took a quarter of PostgreSQL's time away from the work measured.
        var finishedRuns = 0;
        scheduler.RunEnded += (_, state) =>
        {
            if (state == TaskState.Finished)
                Interlocked.Increment(ref finishedRuns);
        };
        await FillAsync(db, list, count);
        var loops = Task.WhenAll(scheduler.RunAsync(stop.Token), poller.RunAsync(stop.Token));
        var watch = Stopwatch.StartNew();
        // The source's list empties as messages are taken; the poll that took the last ones records them right after.
        while (await db.ListLengthAsync(list) > 0)
            await Task.Delay(20);
        while ((await store.CountByStateAsync()).Values.Sum() < count)
            await Task.Delay(100);
        var recordedAt = watch.Elapsed;
        while (Volatile.Read(ref finishedRuns) < count)
            await Task.Delay(20);
        var finishedAt = watch.Elapsed;
        while (await db.ListLengthAsync(processing) > 0)
            await Task.Delay(50);
        var settled = watch.Elapsed;
        await stop.CancelAsync();
        await loops;
        await db.KeyDeleteAsync([(RedisKey)list, (RedisKey)processing]);
        return
        [
            ($"redis -> {kind}: {count} messages -> recorded tasks", $"{recordedAt.TotalSeconds:0.00} s ({count / recordedAt.TotalSeconds:0} /s)", kind == "sqlite" ? ">= 10000 /s" : ""),
            ($"redis -> {kind}: recorded / source alone", string.Create(CultureInfo.InvariantCulture, $"{recordedAt / baseline:0.00}x time"), ""),
            ($"redis -> {kind}: {count} run to TASK_FINISHED (no-op engine)", $"{finishedAt.TotalSeconds:0.00} s ({count / finishedAt.TotalSeconds:0} /s)", ""),
            ($"redis -> {kind}: {count} finished and acknowledged", $"{settled.TotalSeconds:0.00} s ({count / settled.TotalSeconds:0} /s)", kind == "sqlite" ? ">= 3000 /s" : ">= 1500 /s"),
            ($"redis -> {kind}: end to end / source alone", string.Create(CultureInfo.InvariantCulture, $"{settled / baseline:0.00}x time"), ""),
        ];
    }

    /// <summary>The same number of tasks through <c>POST /tasks/</c> (16 clients) on the in-process server with the no-op engine, to TASK_FINISHED.</summary>
    private static async Task<IEnumerable<(string, string, string)>> PostThroughputAsync(string endpoint, string kind, int count)
    {
        string? schema = null;
        string? storeOption = null;
        if (kind == "postgres")
        {
            schema = $"bench_{Guid.NewGuid():N}"[..18];
            await StoreBench.ExecuteAsync($"CREATE SCHEMA {schema};");
            storeOption = "postgres:" + new Npgsql.NpgsqlConnectionStringBuilder(StoreBench.PostgresBase) { SearchPath = schema }.ConnectionString;
        }

        try
        {
            await using var server = await BenchServer.StartAsync(endpoint, capacity: 256, noop: true, store: storeOption);
            var family = "bench-post-" + Guid.NewGuid().ToString("N")[..8];
            var task = BenchServer.Task(family, "true", maxConcurrent: 10_000);
            var watch = Stopwatch.StartNew();
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
            {
                while (Interlocked.Increment(ref next) < count)
                    await server.PostAsync(task);
            })));
            var posted = watch.Elapsed;
            // Polled at a pace a dashboard would poll at: each answer counts the whole table.
            while (true)
            {
                var counts = JsonDocument.Parse(await server.Http.GetStringAsync("/api/summary")).RootElement.GetProperty("counts");
                if (counts.GetProperty("TASK_FINISHED").GetInt64() >= count)
                    break;
                await Task.Delay(250);
            }

            var finished = watch.Elapsed;
            return
            [
                ($"POST /tasks/ -> {kind}: {count} created (16 clients)", $"{posted.TotalSeconds:0.00} s ({count / posted.TotalSeconds:0} /s)", ""),
                ($"POST /tasks/ -> {kind}: {count} run to TASK_FINISHED (no-op engine)", $"{finished.TotalSeconds:0.00} s ({count / finished.TotalSeconds:0} /s)",
                    kind == "sqlite" ? ">= 3000 /s" : ">= 1500 /s"),
            ];
        }
        finally
        {
            if (schema is not null)
            {
                Npgsql.NpgsqlConnection.ClearAllPools();
                await StoreBench.ExecuteAsync($"DROP SCHEMA {schema} CASCADE;");
            }
        }
    }

    /// <summary>
    /// Messages pushed to a Redis queue and tasks posted to <c>POST /tasks/</c> at the same pace on the same server and
    /// engine, each timed to <c>TASK_RUNNING</c>. Two rounds, the queue first in one and <c>POST</c> first in the other, so
    /// neither path alone meets the engine cold (its first containers start slower) or behind the other's cleanup.
    /// </summary>
    private static async Task<IEnumerable<(string, string, string)>> LatencyAsync(string endpoint, ConnectionMultiplexer connection, string redis, int count)
    {
        var db = connection.GetDatabase();
        // The server's default capacity (32), and as much room per task id: at 16 the engine's slower moments filled every
        // slot and either path's p99 became time spent waiting for one, whichever path happened to meet them.
        var capacity = new SchedulerOptions().Capacity;
        await using var server = await BenchServer.StartAsync(endpoint, capacity);
        await server.WaitForSchedulerAsync();
        List<JsonElement> queueRuns = [], postedRuns = [];
        List<double> fromPush = [], direct = [];

        async Task QueueRoundAsync(bool measured = true)
        {
            var id = "bench-latency-" + Guid.NewGuid().ToString("N")[..8];
            var list = "bench:latency:" + id;
            var definition = (Dictionary<string, object>)BenchServer.Task(id, "true", maxConcurrent: capacity);
            definition["queue"] = new Dictionary<string, object> { ["type"] = "redis", ["frequency_seconds"] = 1, ["redis"] = RedisSettings(redis, list) };
            (await server.Http.PostAsJsonAsync("/queues/", definition)).EnsureSuccessStatusCode();

            var pushed = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
            for (var i = 0; i < count; i++)
            {
                pushed[$"latency-{i}"] = TimeProvider.System.GetUtcNow();
                await db.ListRightPushAsync(list, $"latency-{i}");
                await Task.Delay(100);
            }

            var runs = await WaitForRunningAsync(server, id, count);
            await server.Http.GetAsync($"/queues/{id}/disable/");
            await db.KeyDeleteAsync([(RedisKey)list, (RedisKey)("longshore:processing:" + id)]);
            if (!measured)
                return;
            queueRuns.AddRange(runs);
            fromPush.AddRange(runs.Select(r => (Started(r) - pushed[r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!]).TotalMilliseconds));
        }

        async Task PostRoundAsync(bool measured = true)
        {
            var family = "bench-post-" + Guid.NewGuid().ToString("N")[..8];
            var posted = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
            for (var i = 0; i < count; i++)
            {
                var at = TimeProvider.System.GetUtcNow();
                posted[await server.PostAsync(BenchServer.Task(family, "true", capacity))] = at;
                await Task.Delay(100);
            }

            var runs = await WaitForRunningAsync(server, family, count);
            if (!measured)
                return;
            postedRuns.AddRange(runs);
            direct.AddRange(runs.Select(r => (Started(r) - posted[r.GetProperty("mesos_id").GetString()!]).TotalMilliseconds));
        }

        // A round of each first, not measured: the server's code is compiled and tiered up as it first runs, which would
        // slow whichever path went first.
        await QueueRoundAsync(measured: false);
        await PostRoundAsync(measured: false);
        await QueueRoundAsync();
        await PostRoundAsync();
        await PostRoundAsync();
        await QueueRoundAsync();
        var fromRecord = queueRuns.Select(r => (Started(r) - r.GetProperty("created_at").GetDateTimeOffset()).TotalMilliseconds).ToList();
        return
        [
            ($"latency, POST /tasks/ -> TASK_RUNNING p50 / p99 (2 x {count})", P(direct), "baseline"),
            ("latency, POST: recorded -> staged / -> running / -> end recorded, p50 (p99)", Steps(postedRuns), ""),
            ("latency, redis push -> TASK_RUNNING p50 / p99", P(fromPush), "p50 <= baseline + 300 ms, p99 <= 1.5x"),
            ("latency, queue: recorded -> staged / -> running / -> end recorded, p50 (p99)", Steps(queueRuns), ""),
            ("latency, message received (run recorded) -> TASK_RUNNING p50 / p99", P(fromRecord), ""),
            ("latency, push -> running minus POST -> running: p50 / p99 ratio",
                string.Create(CultureInfo.InvariantCulture, $"{Percentile(fromPush, 0.5) - Percentile(direct, 0.5):0} ms / {Percentile(fromPush, 0.99) / Percentile(direct, 0.99):0.00}x"), ""),
        ];
    }

    private static DateTimeOffset Started(JsonElement run) => run.GetProperty("started_at").GetDateTimeOffset();

    /// <summary>Where a run's time went on the server: from its record to the engine call, and the engine's start.</summary>
    private static string Steps(List<JsonElement> runs)
    {
        var staged = runs.Select(r => r.GetProperty("staged_at").GetDateTimeOffset()).ToList();
        var toStaged = runs.Select((r, i) => (staged[i] - r.GetProperty("created_at").GetDateTimeOffset()).TotalMilliseconds).ToList();
        var toRunning = runs.Select((r, i) => (Started(r) - staged[i]).TotalMilliseconds).ToList();
        // status_tstamp: when the end was recorded (finished_at is the engine's measure of the run's length).
        var toEnd = runs.Select(r => r.GetProperty("status_tstamp").GetDouble() * 1000 - Started(r).ToUnixTimeMilliseconds()).ToList();
        return string.Create(CultureInfo.InvariantCulture,
            $"{Percentile(toStaged, 0.5):0} ({Percentile(toStaged, 0.99):0}) / {Percentile(toRunning, 0.5):0} ({Percentile(toRunning, 0.99):0}) / {Percentile(toEnd, 0.5):0} ({Percentile(toEnd, 0.99):0}) ms");
    }

    private static async Task<List<JsonElement>> WaitForRunningAsync(BenchServer server, string family, int count)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var runs = JsonDocument.Parse(await server.Http.GetStringAsync($"/tasks/?id={family}&limit=1000")).RootElement.EnumerateArray().Select(r => r.Clone()).ToList();
            if (runs.Count(r => r.GetProperty("mesos_state").GetString() == "TASK_FINISHED") >= count)
                return runs;
            if (watch.Elapsed > TimeSpan.FromMinutes(5))
                throw new TimeoutException($"only {runs.Count} runs of {family} after 5 minutes");
            await Task.Delay(200);
        }
    }

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * p))];
    }

    private static string P(List<double> values) =>
        string.Create(CultureInfo.InvariantCulture, $"{Percentile(values, 0.5):0} / {Percentile(values, 0.99):0} ms");
}
