using k8s.Models;
using Longshore.Backends.Kubernetes;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Kubernetes;

public sealed class PodStatesTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(60);
    private static readonly DateTimeOffset Now = TestClock.Now();

    private static V1Pod Pod(string phase, string? node = "node-1", V1ContainerState? state = null, string? podReason = null, string? podMessage = null,
        V1PodCondition[]? conditions = null, TimeSpan? age = null) => new()
    {
        Metadata = new V1ObjectMeta { Name = "ls-x", CreationTimestamp = (Now - (age ?? TimeSpan.FromSeconds(1))).UtcDateTime },
        Spec = new V1PodSpec
        {
            NodeName = node,
            Containers =
            [
                new V1Container
                {
                    Name = PodSpecs.ContainerName,
                    Image = "localhost/missing:1",
                    Resources = new V1ResourceRequirements { Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new("16777216") } },
                },
            ],
        },
        Status = new V1PodStatus
        {
            Phase = phase,
            Reason = podReason,
            Message = podMessage,
            Conditions = conditions,
            ContainerStatuses = state is null ? null : [new V1ContainerStatus { Name = PodSpecs.ContainerName, State = state, Image = "localhost/missing:1", ImageID = "", Ready = false, RestartCount = 0 }],
        },
    };

    private static V1ContainerState Waiting(string reason, string message) => new() { Waiting = new V1ContainerStateWaiting { Reason = reason, Message = message } };

    private static V1ContainerState Terminated(int exit, string reason) => new() { Terminated = new V1ContainerStateTerminated { ExitCode = exit, Reason = reason } };

    private static PodReport Map(V1Pod pod, bool deleted = false, bool killed = false) => PodStates.Map(pod, deleted, killed, Now, Grace);

    [Fact]
    public void Map_Unschedulable_StaysStagingWithTheSchedulersReason()
    {
        var pod = Pod("Pending", node: null, conditions:
            [new V1PodCondition { Type = "PodScheduled", Status = "False", Reason = "Unschedulable", Message = "0/1 nodes are available: 1 Insufficient cpu." }]);

        var report = Map(pod);

        Assert.Equal(TaskState.Staging, report.State);
        Assert.Equal("waiting for a node: 0/1 nodes are available: 1 Insufficient cpu.", report.Reason);
    }

    [Fact]
    public void Map_CreatedNotYetScheduled_IsStagingWithoutReason() =>
        Assert.Equal(new PodReport(TaskState.Staging), Map(Pod("Pending", node: null)));

    [Fact]
    public void Map_ScheduledAndCreating_IsStartingOnItsNode()
    {
        var report = Map(Pod("Pending", state: Waiting("ContainerCreating", "")));

        Assert.Equal(TaskState.Starting, report.State);
        Assert.Equal("node-1", report.Node);
    }

    [Fact]
    public void Map_RunningSucceededAndFailed_GiveRunningFinishedAndFailedWithTheExitCode()
    {
        Assert.Equal(TaskState.Running, Map(Pod("Running", state: new V1ContainerState { Running = new V1ContainerStateRunning() })).State);
        var finished = Map(Pod("Succeeded", state: Terminated(0, "Completed")));
        Assert.Equal((TaskState.Finished, 0), (finished.State, finished.ExitCode));
        var failed = Map(Pod("Failed", state: Terminated(3, "Error")));
        Assert.Equal((TaskState.Failed, 3, "Container exited with status 3"), (failed.State, failed.ExitCode, failed.Reason));
    }

    [Fact]
    public void Map_OomKilled_IsFailedSaidAsOutOfMemoryWithTheLimit()
    {
        var report = Map(Pod("Failed", state: Terminated(137, "OOMKilled")));

        Assert.Equal(TaskState.Failed, report.State);
        Assert.Equal(137, report.ExitCode);
        Assert.Equal("out of memory: the container went over its 16 MB memory limit and was killed (exit status 137)", report.Reason);
    }

    [Fact]
    public void Map_ImageNotFound_FailsAtOnceNamingTheImage()
    {
        var report = Map(Pod("Pending", state: Waiting("ErrImagePull", "rpc error: failed to resolve reference \"localhost/missing:1\": localhost/missing:1: not found")));

        Assert.Equal(TaskState.Failed, report.State);
        Assert.Contains("image 'localhost/missing:1' could not be pulled: ErrImagePull", report.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Map_PullFailingForAnUnclearReason_WaitsOutTheGraceThenFails()
    {
        var message = "dial tcp 127.0.0.1:443: connect: connection refused";

        var young = Map(Pod("Pending", state: Waiting("ImagePullBackOff", message), age: TimeSpan.FromSeconds(10)));
        var old = Map(Pod("Pending", state: Waiting("ImagePullBackOff", message), age: TimeSpan.FromSeconds(61)));

        Assert.Equal(TaskState.Starting, young.State);
        Assert.Contains("pulling image 'localhost/missing:1'", young.Reason, StringComparison.Ordinal);
        Assert.Equal(TaskState.Failed, old.State);
        Assert.Contains("could not be pulled for 61 s", old.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Map_InvalidImageName_FailsAtOnce() =>
        Assert.Equal(TaskState.Failed, Map(Pod("Pending", state: Waiting("InvalidImageName", "couldn't parse image reference"))).State);

    [Fact]
    public void Map_ConfigErrorPastTheGrace_FailsNamingIt()
    {
        var report = Map(Pod("Pending", state: Waiting("CreateContainerConfigError", "secret \"db\" not found"), age: TimeSpan.FromMinutes(2)));

        Assert.Equal(TaskState.Failed, report.State);
        Assert.Contains("CreateContainerConfigError: secret \"db\" not found", report.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Map_EvictedOrNodeLost_IsLost()
    {
        Assert.Equal(TaskState.Lost, Map(Pod("Failed", podReason: "Evicted", podMessage: "The node was low on resource: memory.")).State);
        Assert.Contains("evicted", Map(Pod("Failed", podReason: "Evicted", podMessage: "low")).Reason, StringComparison.Ordinal);
        Assert.Equal(TaskState.Lost, Map(Pod("Failed", podReason: "NodeLost", state: Terminated(137, "Error"))).State);
        Assert.Equal(TaskState.Unreachable, Map(Pod("Unknown")).State);
    }

    [Fact]
    public void Map_Deleted_IsLostUnlessWeKilledIt()
    {
        var running = Pod("Running", state: new V1ContainerState { Running = new V1ContainerStateRunning() });

        Assert.Equal(TaskState.Lost, Map(running, deleted: true).State);
        Assert.Contains("deleted by someone else", Map(running, deleted: true).Reason, StringComparison.Ordinal);
        Assert.Equal(TaskState.Killed, Map(running, deleted: true, killed: true).State);
        Assert.Equal(TaskState.Killed, Map(Pod("Failed", state: Terminated(137, "Error")), killed: true).State);
        Assert.Equal(TaskState.Finished, Map(Pod("Succeeded", state: Terminated(0, "Completed")), deleted: true).State);
    }
}
