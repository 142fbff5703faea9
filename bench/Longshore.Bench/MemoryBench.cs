using System.Diagnostics;
using System.Globalization;
using Longshore.Core.Tasks;
using Longshore.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace Longshore.Bench;

/// <summary>
/// Resident memory of the real server process idle on an empty store (the baseline) and on a store holding K finished
/// runs and W waiting ones (not yet due, as runs in a retry backoff) after listing and scraping it, plus how long
/// listing and counting take at that size (p50 and p99 of 200 requests each, each round after a /metrics scrape, once the
/// server has warmed up; the warm-up rounds are shown on a row of their own). Targets: RSS ≤ 300 MB, pages ≤ 5 ms p99.
/// </summary>
internal static class MemoryBench
{
    public static async Task<IEnumerable<(string, string, string)>> RunAsync(string endpoint, int stored, int waiting)
    {
        var empty = Directory.CreateTempSubdirectory("longshore-mem-").FullName;
        var full = Directory.CreateTempSubdirectory("longshore-mem-").FullName;
        try
        {
            var seeding = Stopwatch.StartNew();
            await SeedAsync(Path.Combine(full, "longshore.db"), stored, waiting);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"memory: seeded {stored} finished and {waiting} waiting runs in {seeding.Elapsed.TotalSeconds:0.0} s"));

            var idle = await MeasureAsync(endpoint, empty, null);
            var loaded = await MeasureAsync(endpoint, full, stored);
            return
            [
                ("server RSS, empty store, idle", $"{idle.RssMb:0} MB", "baseline"),
                ($"server RSS, {stored} finished + {waiting} waiting, after reads", $"{loaded.RssMb:0} MB", "≤ 300 MB"),
                ("RSS ratio (stored / empty)", string.Create(CultureInfo.InvariantCulture, $"{loaded.RssMb / idle.RssMb:0.00}x"), ""),
                ("GET /tasks/?state=TASK_FINISHED&limit=100, p50 / p99", Percentiles(loaded.List), "p99 ≤ 5 ms"),
                ("GET /tasks/?after=<middle>&limit=100, p50 / p99", Percentiles(loaded.Page), "p99 ≤ 5 ms"),
                ("GET /tasks/?state=WAITING_ON_OFFERS&limit=100, p50 / p99", Percentiles(loaded.Waiting), "p99 ≤ 5 ms"),
                ("GET /metrics (count by state), p50 / p99", Percentiles(loaded.Metrics), ""),
                ($"the three pages in the first {Warmup} rounds after start (warm-up), p50 / p99", Percentiles(loaded.WarmingUp), ""),
            ];
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
            Directory.Delete(full, recursive: true);
        }
    }

    /// <summary>Creates the schema through the store, then bulk-inserts rows in one transaction (the API would take minutes).</summary>
    private static string Percentiles(List<double> samples)
    {
        if (samples.Count == 0)
            return "-";
        samples.Sort();
        return string.Create(CultureInfo.InvariantCulture, $"{samples[samples.Count / 2]:0.0} / {samples[(int)Math.Ceiling(samples.Count * 0.99) - 1]:0.0} ms");
    }

    private static async Task SeedAsync(string path, int count, int waiting)
    {
        using (await SqliteTaskStore.OpenAsync(path))
        {
        }

        var definition = System.Text.Json.JsonSerializer.Serialize(
            new TaskDefinition { Id = "seeded", Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } },
            TaskDefinitionJson.Options);
        await using var connection = new SqliteConnection($"Data Source={path}");
        await connection.OpenAsync();
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync();
        await using var insert = new SqliteCommand("""
            INSERT INTO runs (mesos_id, family_id, attempt, state, definition, task_retries_left, system_retries_left, not_before,
                created_at, staged_at, started_at, finished_at, updated_at, exit_code, reason)
            VALUES ($id, $family, 1, 'TASK_FINISHED', $definition, 0, 2, $t, $t, $t, $t, $t, $t, 0, 'Container exited with status 0');
            """, connection, transaction);
        await using var wait = new SqliteCommand("""
            INSERT INTO runs (mesos_id, family_id, attempt, state, definition, task_retries_left, system_retries_left, not_before,
                created_at, updated_at, reason)
            VALUES ($id, $family, 1, 'WAITING_ON_OFFERS', $definition, 0, 2, $due, $t, $t, 'waiting for a retry');
            """, connection, transaction);
        var id = insert.Parameters.Add("$id", SqliteType.Text);
        var family = insert.Parameters.Add("$family", SqliteType.Text);
        insert.Parameters.AddWithValue("$definition", definition);
        var time = insert.Parameters.Add("$t", SqliteType.Integer);
        // Finished over the last stretch of time up to now; the waiting runs are due a day from now, so none launches.
        var now = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds();
        var start = now - count - waiting;
        for (var i = 0; i < count; i++)
        {
            family.Value = "seeded-" + (i % 100).ToString(CultureInfo.InvariantCulture);
            id.Value = $"{family.Value}.{Guid.NewGuid():D}";
            time.Value = start + i;
            await insert.ExecuteNonQueryAsync();
        }

        var waitId = wait.Parameters.Add("$id", SqliteType.Text);
        var waitFamily = wait.Parameters.Add("$family", SqliteType.Text);
        wait.Parameters.AddWithValue("$definition", definition);
        wait.Parameters.AddWithValue("$due", now + (long)TimeSpan.FromDays(1).TotalMilliseconds);
        var waitTime = wait.Parameters.Add("$t", SqliteType.Integer);
        for (var i = 0; i < waiting; i++)
        {
            waitFamily.Value = "waiting-" + (i % 100).ToString(CultureInfo.InvariantCulture);
            waitId.Value = $"{waitFamily.Value}.{Guid.NewGuid():D}";
            waitTime.Value = start + count + i;
            await wait.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
    }

    private static async Task<(double RssMb, List<double> List, List<double> Page, List<double> Waiting, List<double> Metrics, List<double> WarmingUp)> MeasureAsync(string endpoint, string dataDir, int? stored)
    {
        var port = BenchServer.FreePort();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])[Path.Combine(AppContext.BaseDirectory, "longshore.dll"), "server", "--urls", $"http://127.0.0.1:{port}", "--data", dataDir, "--docker-host", endpoint,
            // The seeded runs are what is measured: retention must not delete them (1,000 per task id, beyond its 100).
            "--task-retention", "0", "--task-retention-count", "0"])
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        try
        {
            for (var i = 0; ; i++)
            {
                try
                {
                    (await http.GetAsync("/healthz")).EnsureSuccessStatusCode();
                    break;
                }
                catch (HttpRequestException) when (i < 300)
                {
                    await Task.Delay(100);
                }
            }

            List<double> list = [], page = [], waitingPage = [], metrics = [], warmingUp = [];
            if (stored is not null)
            {
                string middle = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync($"/tasks/?state=TASK_FINISHED&limit=1000")).RootElement[999].GetProperty("mesos_id").GetString()!;
                // 200 measured rounds: a p99 of 200 samples is not just the slowest one. Each round also scrapes /metrics, a
                // count over every stored run, so each page follows a heavy request. The rounds before them are the server's
                // warm-up, shown apart: for its first ~60 rounds here the JIT recompiles the hot methods (tiered compilation),
                // and pages take 3-18 ms.
                for (var i = 0; i < Warmup + Rounds; i++)
                {
                    var sample = (list: await TimeAsync(http, "/tasks/?state=TASK_FINISHED&limit=100"),
                        page: await TimeAsync(http, $"/tasks/?after={middle}&limit=100"),
                        waiting: await TimeAsync(http, "/tasks/?state=WAITING_ON_OFFERS&limit=100"),
                        metrics: await TimeAsync(http, "/metrics"));
                    if (i < Warmup)
                    {
                        warmingUp.AddRange([sample.list, sample.page, sample.waiting]);
                        continue;
                    }

                    list.Add(sample.list);
                    page.Add(sample.page);
                    waitingPage.Add(sample.waiting);
                    metrics.Add(sample.metrics);
                }
            }

            await Task.Delay(2000);
            return (ReadRssMb(process.Id), list, page, waitingPage, metrics, warmingUp);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    private const int Warmup = 100;
    private const int Rounds = 200;
    private static readonly byte[] Sink = new byte[64 * 1024];

    /// <summary>
    /// From the request to the last byte of the body, read into a reused buffer: a page of 100 runs is ~80 KB, and
    /// reading it as a string would put a 160 KB string on the client's large-object heap each time, timing the client's
    /// collections as much as the server.
    /// </summary>
    private static async Task<double> TimeAsync(HttpClient http, string path)
    {
        var started = Stopwatch.GetTimestamp();
        using var response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync();
        while (await body.ReadAsync(Sink) > 0)
        {
        }

        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    private static double ReadRssMb(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }
}
