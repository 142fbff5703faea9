using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Hangfire;
using Hangfire.PostgreSql;
using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Storage.Postgres;
using Longshore.Storage.Redis;
using Longshore.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Longshore.Bench;

/// <summary>
/// Control-plane throughput per store: N tasks created, admitted, staged, "launched" on a backend that finishes each
/// at once, and ended, all through the real scheduler and store. Anchor in the same run: Hangfire on Hangfire.PostgreSql
/// enqueueing and processing N empty jobs on the same PostgreSQL server.
/// </summary>
internal static class StoreBench
{
    internal static readonly string PostgresBase = Environment.GetEnvironmentVariable("LONGSHORE_BENCH_POSTGRES")
        ?? "Host=127.0.0.1;Port=5432;Username=longshore;Password=longshore;Database=longshore_test";

    private static readonly string RedisConfiguration = Environment.GetEnvironmentVariable("LONGSHORE_BENCH_REDIS") ?? "127.0.0.1:6379";

    public static async Task<IEnumerable<(string, string, string)>> RunThroughputAsync(int tasks)
    {
        var results = new List<(string, string, string)>();
        var hangfire = await HangfireAsync(tasks);
        results.Add(($"hangfire+postgresql: {tasks} empty jobs", $"{hangfire.TotalSeconds:0.00} s ({tasks / hangfire.TotalSeconds:0} /s)", "baseline"));
        foreach (var kind in new[] { "sqlite", "postgres", "redis" })
        {
            var elapsed = await WithStoreAsync(kind, store => LongshoreAsync(store, tasks));
            results.Add(($"longshore {kind}: {tasks} tasks create→schedule→finish", $"{elapsed.TotalSeconds:0.00} s ({tasks / elapsed.TotalSeconds:0} /s)", ""));
            results.Add(($"longshore {kind} / hangfire throughput", $"{hangfire / elapsed:0.00}x", kind == "postgres" ? ">= 5x" : ""));
        }

        return results;
    }

    /// <summary>Seeds N finished/failed/running runs per store through the store itself, then times the reads the API and /metrics make.</summary>
    public static async Task<IEnumerable<(string, string, string)>> RunVolumeAsync(int runs, IReadOnlyList<string> kinds)
    {
        var results = new List<(string, string, string)>();
        foreach (var kind in kinds)
        {
            await WithStoreAsync(kind, async store =>
            {
                var seeding = Stopwatch.StartNew();
                await SeedAsync(store, runs);
                results.Add(($"{kind}: seed {runs} runs through the store", $"{seeding.Elapsed.TotalSeconds:0.0} s ({runs / seeding.Elapsed.TotalSeconds:0} /s)", ""));
                var count = await TimeAsync(() => store.CountByStateAsync());
                results.Add(($"{kind}: count by state at {runs}", $"{count.TotalMilliseconds:0.0} ms", "fast"));
                var first = await store.ListAsync(new RunQuery(100, State: TaskState.Running));
                var page = await TimeAsync(() => store.ListAsync(new RunQuery(100, State: TaskState.Running)));
                results.Add(($"{kind}: first page of 100 by state", $"{page.TotalMilliseconds:0.0} ms", "fast"));
                var deep = await TimeAsync(() => store.ListAsync(new RunQuery(100, first[^1].MesosId, TaskState.Running)));
                results.Add(($"{kind}: next page of 100 by state", $"{deep.TotalMilliseconds:0.0} ms", "fast"));
                var family = await TimeAsync(() => store.ListAsync(new RunQuery(100, FamilyId: "vol7")));
                results.Add(($"{kind}: first page of 100 by family id", $"{family.TotalMilliseconds:0.0} ms", "fast"));
                var active = await TimeAsync(() => store.CountActiveByFamilyAsync());
                results.Add(($"{kind}: active runs by family (every scheduler pass)", $"{active.TotalMilliseconds:0.0} ms", "fast"));
                return TimeSpan.Zero;
            });
        }

        return results;
    }

    private static async Task<TimeSpan> TimeAsync<T>(Func<Task<T>> read)
    {
        await read();
        var best = TimeSpan.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var watch = Stopwatch.StartNew();
            await read();
            best = watch.Elapsed < best ? watch.Elapsed : best;
        }

        return best;
    }

    private static async Task SeedAsync(IStateStore store, int runs)
    {
        var states = new[] { TaskState.Finished, TaskState.Finished, TaskState.Finished, TaskState.Failed, TaskState.Running };
        var now = TimeProvider.System.GetUtcNow();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < runs)
            {
                // Inserted in their final state: one write each, so a million fit in minutes; the reads do not care how they got there.
                await store.InsertAsync(NewRun($"vol{i % 50}", now) with { State = states[i % states.Length] });
            }
        })));
    }

    private static TaskRun NewRun(string family, DateTimeOffset now) => TaskRun.CreateFirst(new TaskDefinition
    {
        Id = family,
        Cmd = "true",
        Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } },
        MaxConcurrent = 100_000,
    }, Guid.NewGuid(), now);

    private static async Task<TimeSpan> LongshoreAsync(IStateStore store, int tasks)
    {
        var backend = new NoopBackend();
        using var metrics = new SchedulerMetrics();
        var options = new SchedulerOptions { Capacity = 512, DueBatch = 1024, IdleInterval = TimeSpan.FromMilliseconds(20) };
        var scheduler = new Scheduler(store, backend, new RetryPolicy(new RetryOptions(), Random.Shared.NextDouble), options, TimeProvider.System,
            Guid.NewGuid, metrics, NullLogger<Scheduler>.Instance);
        var ended = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        scheduler.RunEnded += (_, _) =>
        {
            if (Interlocked.Increment(ref ended) == tasks)
                done.TrySetResult();
        };
        var lease = await store.TryAcquireLeaseAsync("bench", TimeSpan.FromMinutes(10), TimeProvider.System.GetUtcNow(), takeOver: true);
        using var stop = new CancellationTokenSource();
        var watch = Stopwatch.StartNew();
        var loop = Task.Run(() =>
        {
            Fencing.Enter(lease.Term);
            return scheduler.RunAsync(stop.Token);
        });
        // Created the way the API creates them: 16 concurrent clients, each insert then a nudge.
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) < tasks)
            {
                await store.InsertAsync(NewRun("through", TimeProvider.System.GetUtcNow()));
                scheduler.Nudge();
            }
        })));
        await done.Task.WaitAsync(TimeSpan.FromMinutes(10));
        var elapsed = watch.Elapsed;
        await stop.CancelAsync();
        await loop;
        return elapsed;
    }

    /// <summary>Runs <paramref name="body"/> on a fresh store of the kind and returns what it measured.</summary>
    internal static async Task<IEnumerable<(string, string, string)>> WithResultsAsync(string kind, Func<IStateStore, Task<IEnumerable<(string, string, string)>>> body)
    {
        IEnumerable<(string, string, string)> results = [];
        await WithStoreAsync(kind, async store =>
        {
            results = await body(store);
            return TimeSpan.Zero;
        });
        return results;
    }

    internal static async Task<TimeSpan> WithStoreAsync(string kind, Func<IStateStore, Task<TimeSpan>> body)
    {
        var name = $"bench_{Guid.NewGuid():N}"[..18];
        switch (kind)
        {
            case "sqlite":
            {
                var folder = Directory.CreateTempSubdirectory("longshore-bench-");
                try
                {
                    await using var store = await SqliteTaskStore.OpenAsync(Path.Combine(folder.FullName, "longshore.db"));
                    return await body(store);
                }
                finally
                {
                    folder.Delete(recursive: true);
                }
            }

            case "postgres":
            {
                await ExecuteAsync($"CREATE SCHEMA {name};");
                try
                {
                    await using var store = await PostgresStore.OpenAsync(new NpgsqlConnectionStringBuilder(PostgresBase) { SearchPath = name }.ConnectionString);
                    return await body(store);
                }
                finally
                {
                    NpgsqlConnection.ClearAllPools();
                    await ExecuteAsync($"DROP SCHEMA {name} CASCADE;");
                }
            }

            default:
            {
                var prefix = name + ":";
                try
                {
                    await using var store = await RedisStore.OpenAsync($"{RedisConfiguration},prefix={prefix}");
                    return await body(store);
                }
                finally
                {
                    await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisConfiguration);
                    var db = redis.GetDatabase();
                    await foreach (var key in redis.GetServers()[0].KeysAsync(pattern: prefix + "*", pageSize: 1000))
                        await db.KeyDeleteAsync(key);
                }
            }
        }
    }

    private static async Task<TimeSpan> HangfireAsync(int jobs)
    {
        var schema = $"hangfire_{Guid.NewGuid():N}"[..20];
        try
        {
            GlobalConfiguration.Configuration
                .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings()
                .UsePostgreSqlStorage(options => options.UseNpgsqlConnection(PostgresBase), new PostgreSqlStorageOptions
                {
                    SchemaName = schema,
                    QueuePollInterval = TimeSpan.FromMilliseconds(50),
                    PrepareSchemaIfNecessary = true,
                });
            var storage = JobStorage.Current;
            using var server = new BackgroundJobServer(new BackgroundJobServerOptions { WorkerCount = 20 }, storage);
            var client = new BackgroundJobClient(storage);
            var watch = Stopwatch.StartNew();
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() =>
            {
                while (Interlocked.Increment(ref next) < jobs)
                    client.Enqueue(() => EmptyJob.Run());
            })));
            var monitoring = storage.GetMonitoringApi();
            while (monitoring.SucceededListCount() < jobs)
                await Task.Delay(50);
            return watch.Elapsed;
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await ExecuteAsync($"DROP SCHEMA IF EXISTS {schema} CASCADE;");
        }
    }

    internal static async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(PostgresBase);
        await connection.OpenAsync();
#pragma warning disable CA2100 // Fixed statements with generated schema names.
        await using var command = new NpgsqlCommand(sql, connection);
#pragma warning restore CA2100
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>A backend that "runs" every launch at once: the engine's cost left out, the control plane's kept.</summary>
    private sealed class NoopBackend : IExecutionBackend
    {
        private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>();

        public string Name => "noop";

        public ChannelReader<StatusUpdate> Updates => _updates.Reader;

        public Task CheckAvailableAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default)
        {
            _updates.Writer.TryWrite(new StatusUpdate(run.MesosId, TaskState.Finished, TimeProvider.System.GetUtcNow()) { ExitCode = 0, ContainerId = run.MesosId, Agent = "noop" });
            return Task.FromResult(new LaunchResult(run.MesosId, "noop"));
        }

        public Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default) => Task.FromResult(false);

        public Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default) =>
            Task.FromResult(new ReconcileResult([], 0));

        public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}

/// <summary>The job Hangfire runs: nothing.</summary>
public static class EmptyJob
{
    public static void Run()
    {
    }
}
