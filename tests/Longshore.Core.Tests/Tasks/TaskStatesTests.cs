using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Tasks;

public sealed class TaskStatesTests
{
    [Fact]
    public void WireNames_RoundTripForEveryState()
    {
        foreach (var state in Enum.GetValues<TaskState>())
            Assert.Equal(state, TaskStates.Parse(state.ToWire()));
        Assert.False(TaskStates.TryParse("RUNNING", out _));
    }

    [Fact]
    public void TerminalStates_HaveNoWayOut()
    {
        foreach (var from in TaskStates.Terminal)
        {
            foreach (var to in Enum.GetValues<TaskState>())
                Assert.False(TaskStates.CanTransition(from, to), $"{from} -> {to}");
        }
    }

    [Fact]
    public void Waiting_OnlyStagesOrEndsWithoutEngine()
    {
        var allowed = Enum.GetValues<TaskState>().Where(to => TaskStates.CanTransition(TaskState.WaitingOnOffers, to)).ToHashSet();
        Assert.Equal(new HashSet<TaskState> { TaskState.Staging, TaskState.Killed, TaskState.Error }, allowed);
        Assert.Equal([TaskState.WaitingOnOffers], TaskStates.Predecessors(TaskState.Staging));
    }

    [Fact]
    public void Killing_CannotBeUndoneByALateRunning()
    {
        Assert.False(TaskStates.CanTransition(TaskState.Killing, TaskState.Running));
        Assert.True(TaskStates.CanTransition(TaskState.Killing, TaskState.Killed));
        Assert.True(TaskStates.CanTransition(TaskState.Running, TaskState.Finished));
        Assert.False(TaskStates.CanTransition(TaskState.Running, TaskState.Staging));
    }

    [Fact]
    public void SystemFaults_AreThePlatformsNotTheTasks()
    {
        var expected = new HashSet<TaskState>
        {
            TaskState.Lost, TaskState.Error, TaskState.Dropped, TaskState.Gone, TaskState.GoneByOperator, TaskState.Unknown,
        };
        Assert.Equal(expected, TaskStates.SystemFaults.ToHashSet());
    }
}
