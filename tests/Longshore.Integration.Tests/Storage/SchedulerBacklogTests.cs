using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Longshore.Integration.Tests.Storage;

/// <summary>The scheduler over the real store with a long backlog: a family at its cap must not hide the runs behind it.</summary>
public sealed class SchedulerBacklogTests : IAsyncLifetime
{
    private readonly string _folder = Directory.CreateTempSubdirectory("longshore-backlog-").FullName;
    private SqliteTaskStore _store = null!;

    public async Task InitializeAsync() => _store = await SqliteTaskStore.OpenAsync(Path.Combine(_folder, "longshore.db"), "NORMAL");

    public Task DisposeAsync()
    {
        _store.Dispose();
        Directory.Delete(_folder, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task AFullFamilyWithAThousandWaitingRuns_DoesNotStarveARunQueuedBehindIt()
    {
        var now = TimeProvider.System.GetUtcNow();
        var busy = new TaskDefinition { Id = "busy", MaxConcurrent = 2, Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } };
        foreach (var _ in Enumerable.Range(0, 1000))
            await _store.InsertAsync(TaskRun.CreateFirst(busy, Guid.NewGuid(), now));
        var late = TaskRun.CreateFirst(busy with { Id = "late", MaxConcurrent = 10 }, Guid.NewGuid(), now);
        await _store.InsertAsync(late);
        var scheduler = new Scheduler(_store, new InertBackend(), new RetryPolicy(new RetryOptions(), () => 0.5), new SchedulerOptions { Capacity = 10 },
            TimeProvider.System, Guid.NewGuid, new SchedulerMetrics(), NullLogger<Scheduler>.Instance);
        using var stop = new CancellationTokenSource();

        var loop = scheduler.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await _store.GetAsync(late.MesosId))!.State == TaskState.Staging, TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await loop;

        var staged = await _store.ListAsync(new RunQuery(100, State: TaskState.Staging, FamilyId: "busy"));
        Assert.Equal(2, staged.Count);
    }
}
