using System.Diagnostics;
using System.Net.Http.Json;
using Docker.DotNet.Models;
using Longshore.Backends.Docker;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Storage.Sqlite;

namespace Longshore.Integration.Tests;

/// <summary>Crash safety: the server killed with SIGKILL and started again loses nothing and launches nothing twice.</summary>
public sealed class RestartTests
{
    [Fact]
    public async Task KillNineWithTasksRunning_ThenRestart_EveryTaskEndsRight_NoneLaunchedTwice()
    {
        var shared = Directory.CreateTempSubdirectory("longshore-launches-").FullName;
        await using var server = await LongshoreServer.StartAsync("--capacity", "4", "--allow-host-path", shared, "--retry-backoff-base", "0.2");
        var family = Families.New("crash");
        var volume = new Dictionary<string, string> { ["hostPath"] = shared, ["containerPath"] = "/shared", ["mode"] = "RW" };
        // Each launch leaves a line in a host file: the engine's own record of how often each run really started.
        // The first task's container is removed while the server is down: it must end lost and be retried.
        var vanishing = await server.PostTaskAsync(Tasks.Definition(family,
            "echo $MESOS_TASK_ID >> /shared/launches; if [ \"$LONGSHORE_ATTEMPT\" = 1 ]; then sleep 120; fi", systemRetries: 1, volumes: [volume]));
        var ok = new List<string>();
        for (var i = 0; i < 6; i++)
            ok.Add(await server.PostTaskAsync(Tasks.Definition(family, "echo $MESOS_TASK_ID >> /shared/launches; sleep 4; echo done", volumes: [volume])));
        var failing = await server.PostTaskAsync(Tasks.Definition(family, "echo $MESOS_TASK_ID >> /shared/launches; sleep 3; exit 5", volumes: [volume]));

        var watch = Stopwatch.StartNew();
        while ((await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, family, runningOnly: true)).Count < 4 && watch.Elapsed < TimeSpan.FromSeconds(60))
            await Task.Delay(100);
        await server.WaitForStateAsync(vanishing, state => state == "TASK_RUNNING");
        await server.KillHardAsync();
        using (var client = TestEngine.CreateClient())
            await client.Containers.RemoveContainerAsync(DockerBackend.ContainerName(vanishing), new ContainerRemoveParameters { Force = true });
        // Containers outlive the server; some end while nobody watches.
        await Task.Delay(TimeSpan.FromSeconds(5));
        await server.StartAgainAsync();

        var ends = new List<System.Text.Json.JsonElement>();
        foreach (var id in ok)
            ends.Add(await server.WaitForEndAsync(id, TimeSpan.FromSeconds(120)));
        var failed = await server.WaitForEndAsync(failing, TimeSpan.FromSeconds(120));
        var vanished = await server.WaitForChainAsync(vanishing, TimeSpan.FromSeconds(120));

        Assert.All(ends, run => Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString()));
        Assert.Equal("TASK_FAILED", failed.GetProperty("mesos_state").GetString());
        Assert.Equal(5, failed.GetProperty("exit_code").GetInt32());
        Assert.Equal(["TASK_LOST", "TASK_FINISHED"], vanished.Select(run => run.GetProperty("mesos_state").GetString()));
        var launches = (await File.ReadAllLinesAsync(Path.Combine(shared, "launches"))).Where(line => line.Length > 0).ToList();
        var started = ok.Append(failing).Concat(vanished.Select(run => run.GetProperty("mesos_id").GetString()!));
        Assert.Equal(started.Order(), launches.Order());
        foreach (var id in ok)
        {
            var logs = await server.Http.GetStringAsync($"/tasks/{id}/logs/");
            Assert.Contains("done", logs, StringComparison.Ordinal);
        }

        watch.Restart();
        while ((await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, family)).Count > 0 && watch.Elapsed < TimeSpan.FromSeconds(30))
            await Task.Delay(200);
        Assert.Empty(await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, family));
    }

    [Fact]
    public async Task KillNineDuringAJob_ThenRestart_ExactlyTheDeclaredReplicasRun()
    {
        await using var server = await LongshoreServer.StartAsync("--job-backoff-base", "0.5");
        var id = Families.New("jobcrash");
        await server.CreateAsync(Jobs.Job(id, Jobs.Group("a", 3), Jobs.Group("b", 2)));
        await Jobs.WaitForRunningAsync(id, "a", 3);
        await Jobs.WaitForRunningAsync(id, "b", 2);

        await server.KillHardAsync();
        // While nobody watches, one replica dies.
        var victim = (await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{id}-a-test", runningOnly: true))[0];
        using (var client = TestEngine.CreateClient())
            await client.Containers.KillContainerAsync(victim.ID, new ContainerKillParameters { Signal = "KILL" });
        await server.StartAgainAsync();

        await Jobs.WaitForRunningAsync(id, "a", 3);
        await Jobs.WaitForRunningAsync(id, "b", 2);
        // Stable, not just passing through the right count.
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(1000);
            var a = await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{id}-a-test", runningOnly: true);
            var b = await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{id}-b-test", runningOnly: true);
            Assert.Equal(3, a.Count);
            Assert.Equal(2, b.Count);
            Assert.Equal(5, a.Concat(b).Select(c => c.Labels[DockerBackend.RunLabel]).Distinct().Count());
            Assert.DoesNotContain(a, c => c.ID == victim.ID);
        }

        var job = await server.GetJobAsync(id);
        Assert.Equal("RUNNING", job.GetProperty("job_state").GetString());
        await server.Http.DeleteAsync($"/job/{id}");
        var watch = Stopwatch.StartNew();
        while (await Jobs.AllContainersAsync(id, "a") + await Jobs.AllContainersAsync(id, "b") > 0 && watch.Elapsed < TimeSpan.FromSeconds(30))
            await Task.Delay(200);
    }

    [Fact]
    public async Task KillNineWithACronQueue_ThenRestart_FiresEachTimeOnce_AndReplaysTheBacklog()
    {
        await using var server = await LongshoreServer.StartAsync();
        var id = Families.New("croncrash");
        using (var created = await server.Http.PostAsJsonAsync("/queues/", QueuesTests.CronQueue(id, "* * * * * *", "true", maxBacklog: 3)))
            created.EnsureSuccessStatusCode();
        await Task.Delay(3500);
        await server.KillHardAsync();
        var killedAt = DateTimeOffset.UtcNow;
        // Down for longer than the 10 s on-time window: the older missed fires are skipped, the 3 most recent replayed.
        await Task.Delay(TimeSpan.FromSeconds(16));
        await server.StartAgainAsync();
        // The first poll after the restart replays the backlog; on a loaded machine it may come some seconds late.
        await Eventually.WaitUntilAsync(async () => System.Text.Json.JsonDocument.Parse(await server.Http.GetStringAsync($"/tasks/?id={id}&limit=1000")).RootElement
            .EnumerateArray().Any(r => r.GetProperty("created_at").GetDateTimeOffset() > killedAt), TimeSpan.FromSeconds(60), () => server.Output);
        await Task.Delay(2000);
        await server.Http.GetAsync($"/queues/{id}/disable/");

        // A fire is one task. The kill may land between a run's staging and its container, and then that run ends
        // TASK_LOST and is retried: the retry is the same task's next attempt, not a second fire.
        var all = System.Text.Json.JsonDocument.Parse(await server.Http.GetStringAsync($"/tasks/?id={id}&limit=1000")).RootElement.EnumerateArray().ToList();
        var runs = all.Where(r => r.GetProperty("attempt").GetInt32() == 1)
            .Select(r => (Fire: DateTimeOffset.FromUnixTimeSeconds(long.Parse(r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!, System.Globalization.CultureInfo.InvariantCulture)),
                Created: r.GetProperty("created_at").GetDateTimeOffset()))
            .ToList();
        var twice = runs.GroupBy(r => r.Fire).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(twice.Count == 0, "fired more than once: " + string.Join(", ", twice) + "\n" + string.Join("\n", all.Select(r =>
            $"{r.GetProperty("mesos_id").GetString()} attempt {r.GetProperty("attempt").GetInt32()} {r.GetProperty("mesos_state").GetString()} {r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()}")));
        Assert.Contains(runs, r => r.Created < killedAt);
        var firstPoll = runs.Where(r => r.Created > killedAt).Min(r => r.Created);
        var replayed = runs.Where(r => r.Created == firstPoll && r.Fire < firstPoll - TimeSpan.FromSeconds(10)).ToList();
        Assert.Equal(3, replayed.Count);
        var lastBeforeCrash = runs.Where(r => r.Created < killedAt).Max(r => r.Fire);
        Assert.True(replayed.Min(r => r.Fire) > lastBeforeCrash + TimeSpan.FromSeconds(1), "older missed fires should have been skipped");
    }

    [Fact]
    public async Task SigtermDuringLaunches_ThenRestart_EveryRunLaunchedOnce_NoneLostOrRetried()
    {
        var shared = Directory.CreateTempSubdirectory("longshore-term-").FullName;
        await using var server = await LongshoreServer.StartAsync("--capacity", "24", "--allow-host-path", shared);
        var family = Families.New("termlaunch");
        var volume = new Dictionary<string, string> { ["hostPath"] = shared, ["containerPath"] = "/shared", ["mode"] = "RW" };
        // No system retries: a run whose launch the stop cut off ends TASK_LOST for good instead of hiding behind a retry.
        var ids = await Task.WhenAll(Enumerable.Range(0, 24).Select(_ => server.PostTaskAsync(Tasks.Definition(family,
            "echo $MESOS_TASK_ID >> /shared/launches; sleep 2", systemRetries: 0, maxConcurrent: 24, volumes: [volume]))));

        // SIGTERM (as systemd or podman stop sends it) once the scheduler has begun launching: most launches are under way.
        await Eventually.WaitUntilAsync(async () => (await server.RunsAsync(family)).Any(run => run.GetProperty("mesos_state").GetString() != "WAITING_ON_OFFERS"),
            TimeSpan.FromSeconds(60), () => server.Output);
        var exitCode = await server.StopGracefullyAsync();
        var stopOutput = server.Output;
        // Stopped: every run is still waiting (no container), launched (its container started) or already ended, none in between.
        IReadOnlyList<TaskRun> stored;
        using (var store = await SqliteTaskStore.OpenAsync(Path.Combine(server.DataDir, "longshore.db")))
            stored = await store.ListAsync(new RunQuery(1000, FamilyId: family));
        var containers = (await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, family)).ToDictionary(c => c.Labels[DockerBackend.RunLabel], c => c.State);
        var halfLaunched = stored.Where(run => run.State != Longshore.Core.Tasks.TaskState.WaitingOnOffers && !run.State.IsTerminal()
            && (!containers.TryGetValue(run.MesosId, out var state) || state is "created" or "configured")).ToList();
        Assert.True(halfLaunched.Count == 0, "half-launched at the stop: " + string.Join(", ", halfLaunched.Select(run =>
            $"{run.MesosId} {run.State} container {containers.GetValueOrDefault(run.MesosId) ?? "none"}")));
        Assert.Contains(stored, run => run.State != Longshore.Core.Tasks.TaskState.WaitingOnOffers);
        await server.StartAgainAsync();
        var ends = new List<System.Text.Json.JsonElement>();
        foreach (var id in ids)
            ends.Add(await server.WaitForEndAsync(id, TimeSpan.FromSeconds(120)));

        Assert.Equal(0, exitCode);
        Assert.DoesNotContain(" fail:", stopOutput, StringComparison.Ordinal);
        Assert.All(ends, run => Assert.True(run.GetProperty("mesos_state").GetString() == "TASK_FINISHED", run.ToString()));
        Assert.Equal(ids.Length, (await server.RunsAsync(family)).Count);
        var launches = (await File.ReadAllLinesAsync(Path.Combine(shared, "launches"))).Where(line => line.Length > 0);
        Assert.Equal(ids.Order(), launches.Order());
    }

    [Fact]
    public async Task Sigterm_StopsCleanly_WithoutErrors_OpenModeBannerShown()
    {
        await using var server = await LongshoreServer.StartAsync();
        var id = await server.PostTaskAsync(Tasks.Definition(Families.New("term"), "echo ok"));
        await server.WaitForEndAsync(id);

        var exitCode = await server.StopGracefullyAsync();

        Assert.Equal(0, exitCode);
        Assert.Contains("Open loopback mode", server.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(" fail:", server.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(" crit:", server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NonLoopbackWithoutTokens_RefusesToStart_SayingHowToFix()
    {
        var (exitCode, stderr) = await RunServerCommandAsync("--urls", "http://0.0.0.0:1", "--docker-host", TestEngine.Endpoint);

        Assert.Equal(2, exitCode);
        Assert.Contains("without access tokens", stderr, StringComparison.Ordinal);
        Assert.Contains("--tokens-file", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoEngine_ServerRefusesToStart_NamingWhatItTried()
    {
        var data = Path.Combine(Path.GetTempPath(), "ls-noengine-" + Guid.NewGuid().ToString("N"));
        var (exitCode, stderr) = await RunServerCommandAsync("--urls", "http://127.0.0.1:0", "--data", data, "--docker-host", "unix:///tmp/no-such-engine.sock");

        Assert.Equal(1, exitCode);
        Assert.Contains("unix:///tmp/no-such-engine.sock (no such socket)", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidSettings_ServerRefusesToStart_NamingEachSetting()
    {
        var (exitCode, stderr) = await RunServerCommandAsync("--capacity", "0", "--sqlite-synchronous", "OFF", "--urls", "ftp://x");

        Assert.Equal(2, exitCode);
        Assert.Contains("capacity:", stderr, StringComparison.Ordinal);
        Assert.Contains("sqlite-synchronous:", stderr, StringComparison.Ordinal);
        Assert.Contains("urls:", stderr, StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string Stderr)> RunServerCommandAsync(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in (string[])[LongshoreServer.CliPath, "server", .. args])
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, stderr);
    }
}
