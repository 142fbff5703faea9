using System.Text.Json;
using System.Text.RegularExpressions;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>
/// Retention end to end on the real server and engine, configured as Hippo is (config.py: TASK_RETENTION_SECONDS,
/// TASK_RETENTION_COUNT). The store side, on every store, is in <see cref="Storage.StoreComplianceTests"/>.
/// </summary>
public sealed class RetentionTests
{
    [Fact]
    public async Task Retention_FromHipposVariables_KeepsTheNewestEndedRunsPerTaskId_ThenDeletesThemByAge_NeverAnActiveRun()
    {
        // config.py: TASK_RETENTION_SECONDS and TASK_RETENTION_COUNT.
        await using var server = await LongshoreServer.StartAsync(new Dictionary<string, string?> { ["TASK_RETENTION_SECONDS"] = "20", ["TASK_RETENTION_COUNT"] = "2" });
        var metrics = await server.Http.GetStringAsync("/metrics");
        Assert.Contains("longshore_task_retention_seconds 20", metrics, StringComparison.Ordinal);
        Assert.Contains("longshore_task_retention_count 2", metrics, StringComparison.Ordinal);

        var family = Families.New("hret");
        var active = await server.PostTaskAsync(Tasks.Definition(Families.New("hlong"), "sleep 600"));
        var ids = new List<string>();
        for (var i = 0; i < 4; i++)
            ids.Add(await server.PostTaskAsync(Tasks.Definition(family, "true")));

        // By count (a pass every 10 s): whatever has ended by a pass, the two newest ended runs stay, so once all four
        // have ended two remain, the newest. Then by age, 20 s after each one's end: none.
        static List<string> Ids(List<JsonElement> runs) => runs.Select(r => r.GetProperty("mesos_id").GetString()!).ToList();
        static bool AllEnded(List<JsonElement> runs) => runs.All(r => TestStates.IsTerminal(r.GetProperty("mesos_state").GetString()!));
        await Eventually.WaitUntilAsync(async () => await server.RunsAsync(family) is { Count: <= 2 } runs && AllEnded(runs), TimeSpan.FromSeconds(120), () => server.Output);
        Assert.Equal([ids[3], ids[2]], Ids(await server.RunsAsync(family)));
        await Eventually.WaitUntilAsync(async () => (await server.RunsAsync(family)).Count == 0, TimeSpan.FromSeconds(60), () => server.Output);

        Assert.Equal("TASK_RUNNING", (await server.GetRunAsync(active)).GetProperty("mesos_state").GetString());
        metrics = await server.Http.GetStringAsync("/metrics");
        long Pruned(string rule) => long.Parse(Regex.Match(metrics, $"longshore_task_retention_pruned_total\\{{rule=\"{rule}\"\\}} ([0-9]+)").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(4, Pruned("count") + Pruned("age"));
        Assert.InRange(Pruned("count"), 1, 2);
        await server.Http.PostAsync($"/tasks/{active}/kill/", null);
    }

    [Fact]
    public async Task Retention_BothRulesOff_KeepsEveryRun_AndTheLeaderKeepsItsTerm()
    {
        await using var server = await LongshoreServer.StartAsync(new Dictionary<string, string?> { ["TASK_RETENTION_SECONDS"] = "0", ["TASK_RETENTION_COUNT"] = "0" });
        var family = Families.New("hkeep");
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
            ids.Add(await server.PostTaskAsync(Tasks.Definition(family, "true")));
        foreach (var id in ids)
            await server.WaitForEndAsync(id);
        await Task.Delay(TimeSpan.FromSeconds(4));   // beyond a renewal interval of the default lease

        // Retention's loop idles while off: had it ended, the leader's work would end with it, and the term with it.
        var health = JsonDocument.Parse(await server.Http.GetStringAsync("/healthz")).RootElement;
        Assert.Equal((true, 1L), (health.GetProperty("leader").GetBoolean(), health.GetProperty("term").GetInt64()));
        Assert.DoesNotContain("Stepped down", server.Output, StringComparison.Ordinal);
        Assert.Equal(3, (await server.RunsAsync(family)).Count);
    }

    [Fact]
    public async Task Retention_HipposVariableNotANumber_StopsTheServerNamingIt()
    {
        var data = Directory.CreateTempSubdirectory("longshore-test-");
        var result = await CliProcess.RunAsync(["server", "--urls", "http://127.0.0.1:0", "--data", data.FullName],
            new Dictionary<string, string> { ["TASK_RETENTION_COUNT"] = "lots" });
        data.Delete(recursive: true);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("task-retention-count (TASK_RETENTION_COUNT)", result.Stderr, StringComparison.Ordinal);
    }
}
