using Docker.DotNet.Models;
using Longshore.Backends.Docker;
using Longshore.Core.Execution;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using ContainerSpec = Longshore.Core.Tasks.ContainerSpec;
using TaskState = Longshore.Core.Tasks.TaskState;

namespace Longshore.Integration.Tests;

/// <summary>
/// The local engine backend against real podman: reconciliation of containers a launch left created but not started, and
/// the times its reports carry.
/// </summary>
public sealed class DockerReconcileTests : IAsyncLifetime
{
    private readonly string _folder = Directory.CreateTempSubdirectory("longshore-reconcile-").FullName;
    private readonly string _instance = "reconcile-" + Guid.NewGuid().ToString("N")[..8];
    private readonly Docker.DotNet.DockerClient _client = TestEngine.CreateClient();
    private string? _containerId;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_containerId is not null)
            await _client.Containers.RemoveContainerAsync(_containerId, new ContainerRemoveParameters { Force = true });
        _client.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task CreatedNeverStarted_YoungIsLeftForItsOwnStart_AbandonedIsStartedOnce()
    {
        var run = StagedRun("created", "echo ran >> /shared/runs");
        // What a leader killed between create and start leaves: the run's container, created with its labels, never started.
        _containerId = (await _client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = DockerBackend.ContainerName(run.MesosId),
            Image = TestEngine.Image,
            Entrypoint = ["/bin/sh", "-c"],
            Cmd = [run.Definition.Cmd!],
            Labels = new Dictionary<string, string> { [DockerBackend.RunLabel] = run.MesosId, [DockerBackend.FamilyLabel] = run.FamilyId, [DockerBackend.InstanceLabel] = _instance },
            HostConfig = new HostConfig { Binds = [$"{_folder}:/shared:rw"] },
        })).ID;
        // The engine's clock, not the test clock: the backend compares it with the container's creation time.
        var time = new FakeTimeProvider(TimeProvider.System.GetUtcNow());
        using var backend = Backend(time);

        // Young: its creator's start may still be on its way, so it is neither started nor given up.
        var young = await backend.ReconcileAsync([run]);
        Assert.Empty(young.GoneMesosIds);
        Assert.Equal(0, young.OrphansRemoved);
        Assert.Equal("created", (await _client.Containers.InspectContainerAsync(_containerId)).State?.Status);
        // ... and the scheduler is asked to look again once it is old enough, not a whole reconcile interval later.
        Assert.Equal(TimeSpan.FromSeconds(15), young.RecheckAfter);

        // Old enough to be abandoned: started, once, and reported running.
        time.Advance(TimeSpan.FromSeconds(16));
        var old = await backend.ReconcileAsync([run]);
        Assert.Empty(old.GoneMesosIds);
        Assert.Null(old.RecheckAfter);
        var running = await backend.Updates.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((run.MesosId, TaskState.Running), (running.MesosId, running.State));
        await Eventually.WaitUntilAsync(() => Task.FromResult(File.Exists(Path.Combine(_folder, "runs"))), TimeSpan.FromSeconds(20));
        Assert.Equal(["ran"], await File.ReadAllLinesAsync(Path.Combine(_folder, "runs")));
    }

    [Fact]
    public async Task End_IsReportedAtTheEnginesExitTime_NotWhenTheBackendSawIt()
    {
        var run = StagedRun("timed", "sleep 2; exit 3");
        var time = new FakeTimeProvider(TimeProvider.System.GetUtcNow());
        using var backend = Backend(time);

        _containerId = (await backend.LaunchAsync(run)).ContainerId;
        var running = await NextAsync(backend, TaskState.Running);
        // Seeing the exit late (a busy engine answers its wait, inspection and log read seconds later) moves the
        // backend's clock on, not the run's end: it ended as long after its running report as it ran by the engine's
        // clock, two seconds and a little.
        time.Advance(TimeSpan.FromMinutes(5));
        var end = await NextAsync(backend, TaskState.Failed);
        Assert.Equal(3, end.ExitCode);
        Assert.InRange(end.At - running.At, TimeSpan.FromSeconds(1.95), TimeSpan.FromSeconds(60));
        await backend.ReleaseAsync(run);
        _containerId = null;
    }

    private static TaskRun StagedRun(string id, string cmd) => TaskRun.CreateFirst(new TaskDefinition
    {
        Id = id,
        Cmd = cmd,
        Container = new ContainerSpec { Docker = new DockerSpec { Image = TestEngine.Image } },
    }, Guid.NewGuid(), TestClock.Now()) with { State = TaskState.Staging };

    private DockerBackend Backend(TimeProvider time) =>
        new(new DockerBackendOptions { Endpoint = new Uri(TestEngine.Endpoint), InstanceId = _instance }, time, NullLogger<DockerBackend>.Instance);

    private static async Task<StatusUpdate> NextAsync(DockerBackend backend, TaskState state)
    {
        while (true)
        {
            var update = await backend.Updates.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60));
            if (update.State == state)
                return update;
        }
    }

    [Fact]
    public async Task ContainerOfARunNotYetRead_YoungIsLeftAlone_OldIsRemovedAsAnOrphan()
    {
        // A launch under way whose run was staged after the scheduler read the active runs: its container exists, its
        // run is not in the list handed to the reconciliation.
        var mesosId = "launching." + Guid.NewGuid();
        _containerId = (await _client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = DockerBackend.ContainerName(mesosId),
            Image = TestEngine.Image,
            Entrypoint = ["/bin/sh", "-c"],
            Cmd = ["sleep 60"],
            Labels = new Dictionary<string, string> { [DockerBackend.RunLabel] = mesosId, [DockerBackend.FamilyLabel] = "launching", [DockerBackend.InstanceLabel] = _instance },
        })).ID;
        await _client.Containers.StartContainerAsync(_containerId, new ContainerStartParameters());
        var time = new FakeTimeProvider(TimeProvider.System.GetUtcNow());
        using var backend = Backend(time);

        var young = await backend.ReconcileAsync([]);
        Assert.Equal(0, young.OrphansRemoved);
        Assert.Equal("running", (await _client.Containers.InspectContainerAsync(_containerId)).State?.Status);

        // Still there well after any launch would have recorded its run: an orphan of a crash, removed.
        time.Advance(TimeSpan.FromSeconds(16));
        var old = await backend.ReconcileAsync([]);
        Assert.Equal(1, old.OrphansRemoved);
        await Assert.ThrowsAsync<Docker.DotNet.DockerContainerNotFoundException>(() => _client.Containers.InspectContainerAsync(_containerId));
        _containerId = null;
    }
}
