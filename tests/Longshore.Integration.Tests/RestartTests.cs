using System.Diagnostics;
using Longshore.Backends.Docker;
using Longshore.Integration.Tests.Infrastructure;

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
        var ok = new List<string>();
        for (var i = 0; i < 6; i++)
            ok.Add(await server.PostTaskAsync(Tasks.Definition(family, "echo $MESOS_TASK_ID >> /shared/launches; sleep 4; echo done", volumes: [volume])));
        var failing = await server.PostTaskAsync(Tasks.Definition(family, "echo $MESOS_TASK_ID >> /shared/launches; sleep 3; exit 5", volumes: [volume]));

        var watch = Stopwatch.StartNew();
        while ((await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, family, runningOnly: true)).Count < 4 && watch.Elapsed < TimeSpan.FromSeconds(60))
            await Task.Delay(100);
        await server.KillHardAsync();
        // Containers outlive the server; some end while nobody watches.
        await Task.Delay(TimeSpan.FromSeconds(5));
        await server.StartAgainAsync();

        var ends = new List<System.Text.Json.JsonElement>();
        foreach (var id in ok)
            ends.Add(await server.WaitForEndAsync(id, TimeSpan.FromSeconds(120)));
        var failed = await server.WaitForEndAsync(failing, TimeSpan.FromSeconds(120));

        Assert.All(ends, run => Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString()));
        Assert.Equal("TASK_FAILED", failed.GetProperty("mesos_state").GetString());
        Assert.Equal(5, failed.GetProperty("exit_code").GetInt32());
        var launches = (await File.ReadAllLinesAsync(Path.Combine(shared, "launches"))).Where(line => line.Length > 0).ToList();
        Assert.Equal(ok.Append(failing).Order(), launches.Order());
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
    public async Task NoEngine_ServerRefusesToStart_NamingWhatItTried()
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in (string[])[LongshoreServer.CliPath, "server", "--urls", "http://127.0.0.1:0", "--data", Path.Combine(Path.GetTempPath(), "ls-noengine-" + Guid.NewGuid().ToString("N")), "--docker-host", "unix:///tmp/no-such-engine.sock"])
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();

        Assert.Equal(1, process.ExitCode);
        Assert.Contains("unix:///tmp/no-such-engine.sock (no such socket)", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidSettings_ServerRefusesToStart_NamingEachSetting()
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in (string[])[LongshoreServer.CliPath, "server", "--capacity", "0", "--sqlite-synchronous", "OFF", "--urls", "ftp://x"])
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();

        Assert.Equal(2, process.ExitCode);
        Assert.Contains("capacity:", stderr, StringComparison.Ordinal);
        Assert.Contains("sqlite-synchronous:", stderr, StringComparison.Ordinal);
        Assert.Contains("urls:", stderr, StringComparison.Ordinal);
    }
}
