using System.Diagnostics;
using System.Text.Json;
using Longshore.Backends.Mesos;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// A real master failover: three Mesos 1.12 masters elect a leader through ZooKeeper (<c>--quorum=2</c>, replicated
/// log), one agent follows the leader, and Longshore is given the three HTTP addresses. The leading master is killed
/// with SIGKILL while tasks run and others wait for offers.
/// </summary>
public sealed class RealMesosFailoverTests(ITestOutputHelper output)
{
    [RealMesosFailoverFact]
    public async Task LeaderKilled_TasksRunningAndWaiting_NewLeaderTakesTheSameFrameworkAndEveryTaskRunsOnce()
    {
        // The tasks write to a host folder: one "start" line per launch of a task, so a second launch cannot hide.
        var marks = Directory.CreateTempSubdirectory("longshore-failover-").FullName;
        await using var harness = await MesosHarness.StartAsync(RealMesos.HaMasters, options => options with
        {
            FrameworkName = "longshore-failover-" + Guid.NewGuid().ToString("N")[..8],
            FailoverTimeout = TimeSpan.FromMinutes(2),
            ReconnectBackoffCap = TimeSpan.FromSeconds(2),
        }, RealMesos.Image);
        // The agent has 2 cpus: four tasks of 0.5 run, two wait for offers.
        var runs = new List<TaskRun>();
        for (var i = 0; i < 6; i++)
        {
            runs.Add(await harness.SubmitAsync("failover", "echo start >> /marks/$LONGSHORE_MESOS_ID; sleep 40; echo end >> /marks/$LONGSHORE_MESOS_ID",
                cpus: 0.5, mem: 64, shape: d => d with
                {
                    Container = d.Container! with { Volumes = [new VolumeSpec { HostPath = marks, ContainerPath = "/marks", Mode = "RW" }] },
                }));
        }

        await Eventually.WaitUntilAsync(async () => (await StatesAsync(harness, runs)).Count(s => s == TaskState.Running) == 4, TimeSpan.FromMinutes(2),
            () => string.Join(", ", StatesAsync(harness, runs).GetAwaiter().GetResult()));
        var waiting = (await StatesAsync(harness, runs)).Count(s => s != TaskState.Running);
        var frameworkId = harness.Backend.FrameworkId!;
        var leader = await RealMesos.HaLeaderAsync();
        Assert.Equal(leader.Authority, harness.Backend.Leader?.Authority);
        var agent = await AgentUrlAsync(leader);
        var containersBefore = await ContainersAsync(agent, frameworkId);
        Assert.Equal(4, containersBefore.Count);

        var clock = Stopwatch.StartNew();
        await RealMesos.KillMasterAsync(leader);
        try
        {
            await Eventually.WaitUntilAsync(() => Task.FromResult(harness.Backend.Leader is { } now && now.Authority != leader.Authority
                && harness.Backend.Fault is null && harness.Backend.FrameworkId == frameworkId), TimeSpan.FromSeconds(90));
            var resubscribed = clock.Elapsed;
            var newLeader = harness.Backend.Leader!;
            Assert.Equal(newLeader.Authority, (await RealMesos.HaLeaderAsync()).Authority);
            // The agent follows the new leader with its containers still running: the same container for each task. On a
            // loaded machine a failover can outlast a task (CI once took over 25 s): a task gone from the agent must then
            // have finished (that it ran once is checked below), never have been launched again in a new container.
            var containersAfter = new Dictionary<string, string>();
            await Eventually.WaitUntilAsync(async () =>
            {
                containersAfter = await ContainersAsync(agent, frameworkId);
                var gone = runs.Where(r => containersBefore.ContainsKey(r.MesosId) && !containersAfter.ContainsKey(r.MesosId)).ToList();
                return (await StatesAsync(harness, gone)).All(s => s == TaskState.Finished);
            }, TimeSpan.FromSeconds(60));
            foreach (var (task, container) in containersBefore)
                Assert.True(!containersAfter.TryGetValue(task, out var after) || after == container, $"{task} runs in a new container {after}, not {container}");
            output.WriteLine($"{containersBefore.Keys.Count(containersAfter.ContainsKey)} of {containersBefore.Count} containers kept running through the failover");

            foreach (var run in runs)
                await harness.WaitForStateAsync(run.MesosId, TaskState.Finished, TimeSpan.FromMinutes(2));
            output.WriteLine($"{waiting} waiting; new leader {newLeader} subscribed {resubscribed.TotalSeconds:F1} s after the kill; all done after {clock.Elapsed.TotalSeconds:F1} s");

            foreach (var run in runs)
            {
                var done = await harness.GetAsync(run.MesosId);
                Assert.Equal(1, done.Attempt);
                Assert.Null(done.RetriedAs);
                Assert.Equal("start\nend\n", await File.ReadAllTextAsync(Path.Combine(marks, run.MesosId)));
            }

            // The new leader knows the framework as the same one, its tasks ended there.
            // (A task moves to completed_tasks once its end is acknowledged, which follows the store write.)
            await Eventually.WaitUntilAsync(async () =>
            {
                var frameworks = await RealMesos.GetAsync(newLeader, "master/frameworks?framework_id=" + frameworkId);
                var framework = Assert.Single(frameworks.GetProperty("frameworks").EnumerateArray());
                return framework.GetProperty("completed_tasks").GetArrayLength() == 6;
            }, TimeSpan.FromSeconds(30));
        }
        finally
        {
            await RealMesos.RestartMasterAsync(leader);
        }
    }

    private static async Task<TaskState[]> StatesAsync(MesosHarness harness, IEnumerable<TaskRun> runs) =>
        await Task.WhenAll(runs.Select(async run => (await harness.GetAsync(run.MesosId)).State));

    private static async Task<Uri> AgentUrlAsync(Uri master) =>
        MesosAgents.UrlOf(await RealMesos.GetAsync(master, "master/slaves"), "127.0.0.1") ?? throw new InvalidOperationException("no agent on 127.0.0.1");

    /// <summary>The agent's running containers of the framework: task (executor) id → container id.</summary>
    private static async Task<Dictionary<string, string>> ContainersAsync(Uri agent, string frameworkId) =>
        (await RealMesos.GetAsync(agent, "containers")).EnumerateArray()
            .Where(c => c.GetProperty("framework_id").GetString() == frameworkId)
            .ToDictionary(c => c.GetProperty("executor_id").GetString()!, c => c.GetProperty("container_id").GetString()!);
}
