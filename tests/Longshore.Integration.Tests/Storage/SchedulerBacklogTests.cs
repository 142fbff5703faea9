using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Storage;

/// <summary>
/// The scheduler over the real store, launching into an inert engine: a family at its cap must not hide the runs behind
/// it, and what it remembers about runs it killed must not outlive them.
/// </summary>
public sealed class SchedulerBacklogTests : IAsyncLifetime
{
    private LocalStore _local = null!;

    public async Task InitializeAsync() => _local = await LocalStore.OpenAsync(TimeProvider.System, "NORMAL");

    public Task DisposeAsync()
    {
        _local.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task AFullFamilyWithAThousandWaitingRuns_DoesNotStarveARunQueuedBehindIt()
    {
        var now = TimeProvider.System.GetUtcNow();
        var busy = new TaskDefinition { Id = "busy", MaxConcurrent = 2, Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } };
        foreach (var _ in Enumerable.Range(0, 1000))
            await _local.Store.InsertAsync(TaskRun.CreateFirst(busy, Guid.NewGuid(), now));
        var late = TaskRun.CreateFirst(busy with { Id = "late", MaxConcurrent = 10 }, Guid.NewGuid(), now);
        await _local.Store.InsertAsync(late);
        var scheduler = _local.NewScheduler(new SchedulerOptions { Capacity = 10 });
        using var stop = new CancellationTokenSource();

        var loop = scheduler.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await _local.Store.GetAsync(late.MesosId))!.State == TaskState.Staging, TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await loop;

        var staged = await _local.Store.ListAsync(new RunQuery(100, State: TaskState.Staging, FamilyId: "busy"));
        Assert.Equal(2, staged.Count);
    }

    [Fact]
    public async Task KilledRuns_OnceEnded_AreNoLongerRememberedAsDying()
    {
        var now = TimeProvider.System.GetUtcNow();
        var definition = new TaskDefinition { Id = "dying", MaxConcurrent = 20, Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } };
        var runs = Enumerable.Range(0, 20).Select(_ => TaskRun.CreateFirst(definition, Guid.NewGuid(), now)).ToList();
        foreach (var run in runs)
            await _local.Store.InsertAsync(run);
        var scheduler = _local.NewScheduler(new SchedulerOptions { Capacity = 20 });
        using var stop = new CancellationTokenSource();
        var loop = scheduler.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await _local.Store.ListAsync(new RunQuery(100, State: TaskState.Staging))).Count == runs.Count, TimeSpan.FromSeconds(20));

        foreach (var run in runs)
            await scheduler.KillAsync(run.MesosId);
        // The inert engine holds no container, so every kill ends its run at once.
        await Eventually.WaitUntilAsync(async () => (await _local.Store.ListAsync(new RunQuery(100, State: TaskState.Killed))).Count == runs.Count, TimeSpan.FromSeconds(20));
        // Checked while the loop runs: a pass that read a run as dying just before it ended sends one more kill, which
        // the engine answers with the run's end and the set forgets again; stopping mid-way could leave that one behind.
        await Eventually.WaitUntilAsync(() => Task.FromResult(scheduler.KillsInFlight == 0), TimeSpan.FromSeconds(5));
        await stop.CancelAsync();
        await loop;
    }
}
