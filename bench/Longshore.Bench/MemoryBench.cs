using System.Diagnostics;
using System.Globalization;
using Longshore.Core.Tasks;
using Longshore.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace Longshore.Bench;

/// <summary>
/// Resident memory of the real server process idle on an empty store (the baseline) and on a store holding K finished
/// runs after listing and scraping it, plus how long listing and counting take at that size. Target: &lt; 200 MB.
/// </summary>
internal static class MemoryBench
{
    public static async Task<IEnumerable<(string, string, string)>> RunAsync(string endpoint, int stored)
    {
        var empty = Directory.CreateTempSubdirectory("longshore-mem-").FullName;
        var full = Directory.CreateTempSubdirectory("longshore-mem-").FullName;
        try
        {
            var seeding = Stopwatch.StartNew();
            await SeedAsync(Path.Combine(full, "longshore.db"), stored);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"memory: seeded {stored} finished runs in {seeding.Elapsed.TotalSeconds:0.0} s"));

            var idle = await MeasureAsync(endpoint, empty, null);
            var loaded = await MeasureAsync(endpoint, full, stored);
            return
            [
                ("server RSS, empty store, idle", $"{idle.RssMb:0} MB", "baseline"),
                ($"server RSS, {stored} finished runs, after reads", $"{loaded.RssMb:0} MB", "< 200 MB"),
                ("RSS ratio (stored / empty)", string.Create(CultureInfo.InvariantCulture, $"{loaded.RssMb / idle.RssMb:0.00}x"), ""),
                ($"GET /tasks/?state=TASK_FINISHED&limit=100, {stored} runs", $"{loaded.ListMs:0.0} ms", "fast at any size"),
                ($"GET /tasks/?after=<middle>&limit=100, {stored} runs", $"{loaded.PageMs:0.0} ms", ""),
                ($"GET /metrics (count by state), {stored} runs", $"{loaded.MetricsMs:0.0} ms", ""),
            ];
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
            Directory.Delete(full, recursive: true);
        }
    }

    /// <summary>Creates the schema through the store, then bulk-inserts rows in one transaction (the API would take minutes).</summary>
    private static async Task SeedAsync(string path, int count)
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
        var id = insert.Parameters.Add("$id", SqliteType.Text);
        var family = insert.Parameters.Add("$family", SqliteType.Text);
        insert.Parameters.AddWithValue("$definition", definition);
        var time = insert.Parameters.Add("$t", SqliteType.Integer);
        var start = DateTimeOffset.FromUnixTimeSeconds(1_790_000_000).ToUnixTimeMilliseconds();
        for (var i = 0; i < count; i++)
        {
            family.Value = "seeded-" + (i % 100).ToString(CultureInfo.InvariantCulture);
            id.Value = $"{family.Value}.{Guid.NewGuid():D}";
            time.Value = start + i;
            await insert.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
    }

    private static async Task<(double RssMb, double ListMs, double PageMs, double MetricsMs)> MeasureAsync(string endpoint, string dataDir, int? stored)
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

            double list = 0, page = 0, metrics = 0;
            if (stored is not null)
            {
                string middle = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync($"/tasks/?limit=1000")).RootElement[999].GetProperty("mesos_id").GetString()!;
                for (var i = 0; i < 10; i++)
                {
                    list = await TimeAsync(() => http.GetStringAsync("/tasks/?state=TASK_FINISHED&limit=100"));
                    page = await TimeAsync(() => http.GetStringAsync($"/tasks/?after={middle}&limit=100"));
                    metrics = await TimeAsync(() => http.GetStringAsync("/metrics"));
                }
            }

            await Task.Delay(2000);
            return (ReadRssMb(process.Id), list, page, metrics);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    private static async Task<double> TimeAsync(Func<Task<string>> request)
    {
        var started = Stopwatch.GetTimestamp();
        await request();
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    private static double ReadRssMb(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }
}
