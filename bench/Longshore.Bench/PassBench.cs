using System.Diagnostics;
using System.Globalization;
using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Storage.Postgres;
using Longshore.Storage.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Longshore.Bench;

/// <summary>
/// What one turn of the scheduler loop costs (a pass, pending kills, the next due time) when it admits nothing, on a
/// store holding N runs of which A are active, against the same turn on an empty store in the same run. The store is
/// seeded with bulk SQL (the runs' rows as the store writes them). Also times taking the lead (the reconciliation that
/// reads the active runs once). Target: a turn ≤ 5 ms with 1,000,000 stored and 200,000 active.
/// </summary>
internal static class PassBench
{
    private const int Turns = 200;

    public static async Task<IEnumerable<(string, string, string)>> RunAsync(int stored, int active, IReadOnlyList<string> kinds)
    {
        var results = new List<(string, string, string)>();
        foreach (var kind in kinds.Where(k => k is "sqlite" or "postgres"))
        {
            var empty = await MeasureAsync(kind, 0, 0);
            var loaded = await MeasureAsync(kind, stored, active);
            results.Add(($"{kind}: turn that admits nothing, empty store p50 / p99", Ms(empty.P50, empty.P99), "baseline"));
            results.Add(($"{kind}: turn at capacity, {stored} stored / {active} active p50 / p99", Ms(loaded.P50, loaded.P99), "<= 5 ms"));
            results.Add(($"{kind}: turn with room but nothing due, same store p50 / p99", Ms(loaded.RoomP50, loaded.RoomP99), "<= 5 ms"));
            results.Add(($"{kind}: turn at capacity / empty store, p50", string.Create(CultureInfo.InvariantCulture, $"{loaded.P50 / empty.P50:0.00}x"), ""));
            results.Add(($"{kind}: taking the lead (reads the {active} active runs once)", $"{loaded.Lead.TotalMilliseconds:0} ms", ""));
        }

        return results;
    }

    private static string Ms(double p50, double p99) => string.Create(CultureInfo.InvariantCulture, $"{p50:0.00} / {p99:0.00} ms");

    private static async Task<(double P50, double P99, double RoomP50, double RoomP99, TimeSpan Lead)> MeasureAsync(string kind, int stored, int active) =>
        kind == "sqlite" ? await SqliteAsync(stored, active) : await PostgresAsync(stored, active);

    private static async Task<(double, double, double, double, TimeSpan)> SqliteAsync(int stored, int active)
    {
        var folder = Directory.CreateTempSubdirectory("longshore-pass-");
        try
        {
            var path = Path.Combine(folder.FullName, "longshore.db");
            await using var store = await SqliteTaskStore.OpenAsync(path);
            await using (var connection = new SqliteConnection($"Data Source={path}"))
            {
                await connection.OpenAsync();
                await using var seed = new SqliteCommand($"""
                    WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $n)
                    INSERT INTO runs (mesos_id, family_id, attempt, state, definition, task_retries_left, system_retries_left, not_before, created_at,
                        staged_at, started_at, finished_at, updated_at)
                    SELECT 'fam' || (i % 100) || '.' || lower(hex(randomblob(16))), 'fam' || (i % 100), 1,
                        CASE WHEN i <= $active THEN 'TASK_RUNNING' ELSE 'TASK_FINISHED' END, $definition, 0, 2, $t, $t, $t, $t,
                        CASE WHEN i <= $active THEN NULL ELSE $t END, $t
                    FROM s;
                    """, connection);
                AddSeedParameters(seed.Parameters.AddWithValue, stored, active);
                seed.CommandTimeout = 0;
                if (stored > 0)
                    await seed.ExecuteNonQueryAsync();
            }

            return await TimeTurnsAsync(store, active);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            folder.Delete(recursive: true);
        }
    }

    private static async Task<(double, double, double, double, TimeSpan)> PostgresAsync(int stored, int active)
    {
        var schema = $"pass_{Guid.NewGuid():N}"[..18];
        var baseConnection = Environment.GetEnvironmentVariable("LONGSHORE_BENCH_POSTGRES") ?? "Host=127.0.0.1;Port=5432;Username=longshore;Password=longshore;Database=longshore_test";
        var connectionString = new NpgsqlConnectionStringBuilder(baseConnection) { SearchPath = schema, CommandTimeout = 0 }.ConnectionString;
        await ExecuteAsync(baseConnection, $"CREATE SCHEMA {schema};");
        try
        {
            await using var store = await PostgresStore.OpenAsync(connectionString);
            await using (var connection = new NpgsqlConnection(connectionString))
            {
                await connection.OpenAsync();
                await using var seed = new NpgsqlCommand("""
                    INSERT INTO runs (mesos_id, family_id, attempt, state, definition, task_retries_left, system_retries_left, not_before, created_at,
                        staged_at, started_at, finished_at, updated_at)
                    SELECT 'fam' || (i % 100) || '.' || md5(i::text), 'fam' || (i % 100), 1,
                        CASE WHEN i <= @active THEN 'TASK_RUNNING' ELSE 'TASK_FINISHED' END, @definition, 0, 2, @t, @t, @t, @t,
                        CASE WHEN i <= @active THEN NULL ELSE @t END, @t
                    FROM generate_series(1, @n) i;
                    ANALYZE runs;
                    """, connection);
                AddSeedParameters((name, value) => seed.Parameters.AddWithValue(name.Replace('$', '@'), value), stored, active);
                if (stored > 0)
                    await seed.ExecuteNonQueryAsync();
            }

            return await TimeTurnsAsync(store, active);
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await ExecuteAsync(baseConnection, $"DROP SCHEMA {schema} CASCADE;");
        }
    }

    private static void AddSeedParameters(Func<string, object, object> add, int stored, int active)
    {
        add("$n", stored);
        add("$active", active);
        add("$t", TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds());
        add("$definition", System.Text.Json.JsonSerializer.Serialize(new TaskDefinition
        {
            Id = "fam",
            Cmd = "true",
            Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } },
            MaxConcurrent = 100_000,
        }, TaskDefinitionJson.Options));
    }

    /// <summary>Takes the lead (reconciles), then times turns at capacity and with room to spare.</summary>
    private static async Task<(double, double, double, double, TimeSpan)> TimeTurnsAsync(IStateStore store, int active)
    {
        using var metrics = new SchedulerMetrics();
        var scheduler = new Scheduler(store, new IdleBackend(), new RetryPolicy(new RetryOptions(), Random.Shared.NextDouble),
            new SchedulerOptions { Capacity = Math.Max(1, active) }, TimeProvider.System, Guid.NewGuid, metrics, NullLogger<Scheduler>.Instance);
        var lead = Stopwatch.StartNew();
        await scheduler.ReconcileAsync();
        var leadTime = lead.Elapsed;
        var atCapacity = await TurnsAsync(scheduler);
        var roomy = new Scheduler(store, new IdleBackend(), new RetryPolicy(new RetryOptions(), Random.Shared.NextDouble),
            new SchedulerOptions { Capacity = active + 100 }, TimeProvider.System, Guid.NewGuid, metrics, NullLogger<Scheduler>.Instance);
        await roomy.ReconcileAsync();
        var withRoom = await TurnsAsync(roomy);
        return (atCapacity.P50, atCapacity.P99, withRoom.P50, withRoom.P99, leadTime);
    }

    private static async Task<(double P50, double P99)> TurnsAsync(Scheduler scheduler)
    {
        var times = new List<double>(Turns);
        for (var i = 0; i < Turns + 20; i++)
        {
            var started = Stopwatch.GetTimestamp();
            await scheduler.TurnAsync(CancellationToken.None);
            if (i >= 20)
                times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        times.Sort();
        return (times[times.Count / 2], times[Math.Min(times.Count - 1, (int)(times.Count * 0.99))]);
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>An engine that holds every run it is asked about and is never asked to launch (nothing is admitted).</summary>
    private sealed class IdleBackend : IExecutionBackend
    {
        public string Name => "idle";

        public System.Threading.Channels.ChannelReader<StatusUpdate> Updates { get; } = System.Threading.Channels.Channel.CreateUnbounded<StatusUpdate>().Reader;

        public Task CheckAvailableAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default) => throw new InvalidOperationException("nothing is admitted here");

        public Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default) => Task.FromResult(true);

        public Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default) =>
            Task.FromResult(new ReconcileResult([], 0));

        public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
