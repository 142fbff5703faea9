using System.Text.Json;
using Longshore.Core.Execution;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// The main scenarios against a real Mesos 1.12 master and agent (Docker containerizer over podman): the cluster
/// scripts/setup-mesos.sh starts, with HTTP framework authentication, role ACLs and a reservation for the role
/// <c>batch</c>; or any master given in <c>LONGSHORE_TEST_MESOS_MASTER</c>. Each test is a framework of its own.
/// </summary>
[Collection(nameof(RealMesosMasterTests))]
public sealed class RealMesosMasterTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromMinutes(2);

    private static Task<MesosHarness> StartAsync(Func<Longshore.Backends.Mesos.MesosBackendOptions, Longshore.Backends.Mesos.MesosBackendOptions>? more = null) =>
        MesosHarness.StartAsync([RealMesos.Master!], options => more is null ? RealMesos.Configure(options) : more(RealMesos.Configure(options)), RealMesos.Image);

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

    [RealMesosAuthFact]
    public async Task Roles_BatchAndWeb_TasksRunOnOneRoleEachAndTheBatchReservationIsUsed()
    {
        await using var harness = await StartAsync(options => options with { Roles = ["batch", "web"] });
        var runs = new List<TaskRun>();
        for (var i = 0; i < 3; i++)
            runs.Add(await harness.SubmitAsync("real-roles", "sleep 600", cpus: 0.5, mem: 64));
        foreach (var run in runs)
            await harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);

        var tasks = (await RealMesos.OperatorAsync(RealMesos.Master!, "GET_TASKS")).GetProperty("get_tasks").GetProperty("tasks").EnumerateArray()
            .Where(task => task.GetProperty("framework_id").GetProperty("value").GetString() == harness.Backend.FrameworkId).ToArray();
        foreach (var run in runs)
            await harness.Scheduler.KillAsync(run.MesosId);

        Assert.Equal(runs.Select(r => r.MesosId).Order(), tasks.Select(t => t.GetProperty("task_id").GetProperty("value").GetString()).Order());
        foreach (var task in tasks)
        {
            // The master allocated each task's resources to one of the framework's roles, as the ACCEPT named it.
            var roles = task.GetProperty("resources").EnumerateArray().Select(r => r.GetProperty("allocation_info").GetProperty("role").GetString()).Distinct().ToArray();
            Assert.Single(roles);
            Assert.True(roles[0] is "batch" or "web", roles[0]);
        }

        // The agent holds cpus:1;mem:512 for batch: reserved resources are used first, so the first task takes them.
        Assert.Contains(tasks, task => task.GetProperty("resources").EnumerateArray().Any(r => r.GetProperty("name").GetString() == "cpus"
            && r.TryGetProperty("reservations", out var reservations) && reservations[0].GetProperty("role").GetString() == "batch"));
        foreach (var run in runs)
            await harness.WaitForStateAsync(run.MesosId, TaskState.Killed, Wait);
    }

    [RealMesosAuthFact]
    public async Task Subscribe_RoleTheAclsRefuse_FaultNamesTheRoleAndHealthSaysSo()
    {
        await using var harness = await StartAsync(options => options with { Roles = ["forbidden"] });

        harness.Backend.Start();
        await Eventually.WaitUntilAsync(() => Task.FromResult(harness.Backend.Fault is not null), TimeSpan.FromSeconds(30));

        Assert.StartsWith("mesos-role: ", harness.Backend.Fault, StringComparison.Ordinal);
        Assert.Contains("forbidden", harness.Backend.Fault, StringComparison.Ordinal);
        var unavailable = await Assert.ThrowsAsync<EngineUnavailableException>(() => harness.Backend.CheckAvailableAsync());
        Assert.Equal(harness.Backend.Fault, unavailable.Message);
        Assert.Null(harness.Backend.FrameworkId);
    }

    [RealMesosAuthFact]
    public async Task Server_WrongSecret_StopsAtStartWithOneLineNamingTheSecret()
    {
        var wrong = Path.GetTempFileName();
        await File.WriteAllTextAsync(wrong, "not-the-secret\n");

        var line = await MesosAccessTests.RefusedStartAsync(["server", "--data", Directory.CreateTempSubdirectory("longshore-mesos-auth-").FullName,
            "--urls", "http://127.0.0.1:0", "--engine", "mesos", "--mesos-master", RealMesos.Master!.ToString(),
            "--mesos-principal", RealMesos.Principal!, "--mesos-secret-file", wrong], "mesos-secret");

        Assert.Contains("401", line, StringComparison.Ordinal);
    }

    [RealMesosAuthFact]
    public async Task Server_RoleTheAclsRefuse_StopsAtStartWithOneLineNamingTheRole()
    {
        var line = await MesosAccessTests.RefusedStartAsync(["server", "--data", Directory.CreateTempSubdirectory("longshore-mesos-auth-").FullName,
            "--urls", "http://127.0.0.1:0", "--engine", "mesos", "--mesos-master", RealMesos.Master!.ToString(), "--mesos-role", "forbidden",
            "--mesos-principal", RealMesos.Principal!, "--mesos-secret-file", RealMesos.SecretFile!], "mesos-role");

        Assert.Contains("forbidden", line, StringComparison.Ordinal);
    }
}
