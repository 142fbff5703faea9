using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Scheduling;

public sealed class ActiveRunsTests
{
    private static TaskRun Run(string family, TaskState state) =>
        TaskRun.CreateFirst(new TaskDefinition { Id = family }, Guid.NewGuid(), TestClock.Now()) with { State = state };

    [Fact]
    public void StartedAndEnded_CountPerFamilyAndInTotal()
    {
        var active = new ActiveRuns();
        active.Started("a.1", "a", TaskState.Staging);
        active.Started("a.2", "a", TaskState.Staging);
        active.Started("b.1", "b", TaskState.Staging);
        active.Ended("a.1", "a");

        Assert.Equal(2, active.Total);
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1, ["b"] = 1 }, active.ByFamily());
        Assert.False(active.TryGetState("a.1", out _));
        Assert.True(active.TryGetState("a.2", out var state));
        Assert.Equal(TaskState.Staging, state);
    }

    [Fact]
    public void Ended_OfARunNeverCounted_ChangesNothing()
    {
        var active = new ActiveRuns();
        active.Started("a.1", "a", TaskState.Staging);

        active.Ended("x.1", "x");

        Assert.Equal(1, active.Total);
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1 }, active.ByFamily());
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
        Assert.False(active.TryGetState(ending.MesosId, out _));
    }

    [Fact]
    public void Recount_ReturnsHowFarTheCountsWereOff_AndKeepsStatesRecordedSinceTheRead()
    {
        var active = new ActiveRuns();
        var run = Run("a", TaskState.Staging);
        active.Started(run.MesosId, "a", TaskState.Staging);
        active.Started("gone.1", "gone", TaskState.Running);
        active.Moved(run.MesosId, TaskState.Running);
        active.BeginRecount();

        var drift = active.Recount([run, Run("c", TaskState.Running)]);

        // "gone" was counted but the store holds none of it; "c" was not counted but is active.
        Assert.Equal(2, drift);
        Assert.True(active.TryGetState(run.MesosId, out var state));
        Assert.Equal(TaskState.Running, state);
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1, ["c"] = 1 }, active.ByFamily());
    }
}
