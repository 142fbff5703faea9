using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Scheduling;

public sealed class ActiveRunsTests
{
    private static TaskRun Run(string family, TaskState state) =>
        TaskRun.CreateFirst(new TaskDefinition { Id = family }, Guid.NewGuid(), TestClock.Now()) with { State = state };

    private static void Start(ActiveRuns active, string mesosId, string family) =>
        active.Started(Run(family, TaskState.Staging) with { MesosId = mesosId });

    [Fact]
    public void StartedAndEnded_CountPerFamilyAndInTotal()
    {
        var active = new ActiveRuns();
        Start(active, "a.1", "a");
        Start(active, "a.2", "a");
        Start(active, "b.1", "b");
        active.Ended("a.1", "a");

        Assert.Equal(2, active.Total);
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1, ["b"] = 1 }, active.ByFamily());
        Assert.False(active.TryGet("a.1", out _));
        Assert.True(active.TryGet("a.2", out var known));
        Assert.Equal(TaskState.Staging, known.State);
    }

    [Fact]
    public void Ended_OfARunNeverCounted_ChangesNothing()
    {
        var active = new ActiveRuns();
        Start(active, "a.1", "a");

        active.Ended("x.1", "x");

        Assert.Equal(1, active.Total);
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1 }, active.ByFamily());
    }

    [Fact]
    public void Recount_ARunStagedAfterTheRead_IsStillCounted_AndOneTheReadAlsoListedOnlyOnce()
    {
        var active = new ActiveRuns();
        var before = Run("a", TaskState.Running);
        active.Started(before);
        active.BeginRecount();
        // The read lists the run staged before it; a pass stages two more meanwhile, and the read caught one of them too.
        var after = Run("a", TaskState.Staging);
        var both = Run("b", TaskState.Staging);
        active.Started(after);
        active.Started(both);
        IReadOnlyCollection<TaskRun> listed = [before, both];

        Assert.Equal(0, active.Recount(listed));

        Assert.Equal(new Dictionary<string, int> { ["a"] = 2, ["b"] = 1 }, active.ByFamily());
        Assert.Equal(3, active.Total);
        Assert.True(active.TryGet(after.MesosId, out var known));
        Assert.Equal(TaskState.Staging, known.State);

        // Only runs staged during that recount are remembered: the next one starts from its own read.
        active.BeginRecount();
        Assert.Equal(3, active.Recount([]));
        Assert.Equal(0, active.Total);
    }

    [Fact]
    public void Recount_ARunThatEndedAfterTheReadListedIt_IsNotCountedAgain()
    {
        var active = new ActiveRuns();
        var ending = Run("a", TaskState.Running);
        var staying = Run("a", TaskState.Running);
        active.BeginRecount();
        // The read lists both; one of them ends before the recount is applied.
        IReadOnlyCollection<TaskRun> listed = [ending, staying, Run("b", TaskState.Staging)];
        active.Ended(ending.MesosId, "a");

        active.Recount(listed);

        Assert.Equal(new Dictionary<string, int> { ["a"] = 1, ["b"] = 1 }, active.ByFamily());
        Assert.Equal(2, active.Total);
        Assert.False(active.TryGet(ending.MesosId, out _));
    }

    [Fact]
    public void Recount_ReturnsHowFarTheCountsWereOff_AndKeepsStatesRecordedSinceTheRead()
    {
        var active = new ActiveRuns();
        var run = Run("a", TaskState.Staging);
        active.Started(run);
        Start(active, "gone.1", "gone");
        active.Moved(run.MesosId, TaskState.Running, DateTimeOffset.UnixEpoch);
        active.BeginRecount();

        var drift = active.Recount([run, Run("c", TaskState.Running)]);

        // "gone" was counted but the store holds none of it; "c" was not counted but is active.
        Assert.Equal(2, drift);
        Assert.True(active.TryGet(run.MesosId, out var known));
        Assert.Equal(TaskState.Running, known.State);
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1, ["c"] = 1 }, active.ByFamily());
    }
}
