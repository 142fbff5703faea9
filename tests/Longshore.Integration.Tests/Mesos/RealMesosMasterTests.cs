using Longshore.Core.Tasks;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>A fact that runs only when <c>LONGSHORE_TEST_MESOS_MASTER</c> names a real master (xunit 2 has no dynamic skip).</summary>
public sealed class RealMesosMasterFactAttribute : FactAttribute
{
    public RealMesosMasterFactAttribute()
    {
        if (RealMesosMasterTests.Master is null)
            Skip = "set LONGSHORE_TEST_MESOS_MASTER=http://host:5050 to run the Mesos scenarios against a real master (none runs here)";
    }
}

/// <summary>
/// The main scenarios against a real Mesos master with at least one agent (1 CPU, 128 MB free, able to run
/// <c>LONGSHORE_TEST_MESOS_IMAGE</c>, default <c>busybox</c>). Opt-in; each test uses its own framework and data folder.
/// </summary>
public sealed class RealMesosMasterTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromMinutes(2);

    public static Uri? Master { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_MESOS_MASTER") is { Length: > 0 } value
        ? new Uri(value)
        : null;

    private static string Image => Environment.GetEnvironmentVariable("LONGSHORE_TEST_MESOS_IMAGE") ?? "busybox";

    private static Task<MesosHarness> StartAsync() =>
        MesosHarness.StartAsync([Master!], options => options with { FrameworkName = "longshore-test-" + Guid.NewGuid().ToString("N")[..8] }, Image);

    [RealMesosMasterFact]
    public async Task Run_Echo_FinishesWithItsOutput()
    {
        await using var harness = await StartAsync();

        var run = await harness.SubmitAsync("real-echo", "echo hello-real-mesos", cpus: 0.1, mem: 32);

        var done = await harness.WaitForStateAsync(run.MesosId, TaskState.Finished, Wait);
        Assert.Equal(0, done.ExitCode);
        Assert.NotNull(done.Agent);
        var logs = await harness.Store.GetLogsAsync(run.MesosId);
        Assert.Contains("hello-real-mesos", logs?.Stdout ?? "", StringComparison.Ordinal);
    }

    [RealMesosMasterFact]
    public async Task Run_WithPorts_GetsTwoDistinctOfferedPortsInItsEnvironment()
    {
        await using var harness = await StartAsync();

        var run = await harness.SubmitAsync("real-ports", "echo \"ports=$PORT0,$PORT1 all=$PORTS\"", cpus: 0.1, mem: 32, ports: 2);

        await harness.WaitForStateAsync(run.MesosId, TaskState.Finished, Wait);
        var stdout = (await harness.Store.GetLogsAsync(run.MesosId))?.Stdout ?? "";
        var match = System.Text.RegularExpressions.Regex.Match(stdout, @"ports=(\d+),(\d+) all=(\d+,\d+)");
        Assert.True(match.Success, "output: " + stdout);
        Assert.NotEqual(match.Groups[1].Value, match.Groups[2].Value);
        Assert.Equal($"{match.Groups[1].Value},{match.Groups[2].Value}", match.Groups[3].Value);
    }

    [RealMesosMasterFact]
    public async Task Run_Exit3_FailsWithTheExitCode()
    {
        await using var harness = await StartAsync();

        var run = await harness.SubmitAsync("real-exit3", "exit 3", cpus: 0.1, mem: 32);

        var failed = await harness.WaitForStateAsync(run.MesosId, TaskState.Failed, Wait);
        Assert.Equal(3, failed.ExitCode);
    }

    [RealMesosMasterFact]
    public async Task Kill_Sleep_EndsKilled()
    {
        await using var harness = await StartAsync();
        var run = await harness.SubmitAsync("real-kill", "sleep 600", cpus: 0.1, mem: 32);
        await harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);

        await harness.Scheduler.KillAsync(run.MesosId);

        await harness.WaitForStateAsync(run.MesosId, TaskState.Killed, Wait);
    }

    [RealMesosMasterFact]
    public async Task SchedulerRestart_RunningTaskIsAdoptedNotRelaunched()
    {
        await using var harness = await StartAsync();
        var run = await harness.SubmitAsync("real-restart", "sleep 600", cpus: 0.1, mem: 32);
        var running = await harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);
        var frameworkId = harness.Backend.FrameworkId;

        await harness.StopSchedulerAsync();
        harness.StartScheduler();
        await Task.Delay(TimeSpan.FromSeconds(5));

        Assert.Equal(TaskState.Running, (await harness.GetAsync(run.MesosId)).State);
        Assert.Equal(frameworkId, harness.Backend.FrameworkId);
        Assert.Equal(running.Agent, (await harness.GetAsync(run.MesosId)).Agent);
        await harness.Scheduler.KillAsync(run.MesosId);
        await harness.WaitForStateAsync(run.MesosId, TaskState.Killed, Wait);
    }
}
