using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Tasks;

public sealed class TaskStatesTests
{
    public static TheoryData<TaskState> AllStates => new(Enum.GetValues<TaskState>());

    public static TheoryData<TaskState> TerminalStates => new(TaskStates.Terminal.Order());

    public static TheoryData<TaskState> ActiveStates => new(TaskStates.Active.Order());

    [Theory]
    [MemberData(nameof(AllStates))]
    public void ToWire_EveryState_ParsesBackToTheSameState(TaskState state)
    {
        Assert.Equal(state, TaskStates.Parse(state.ToWire()));
        Assert.True(TaskStates.TryParse(state.ToWire(), out var parsed));
        Assert.Equal(state, parsed);
    }

    [Fact]
    public void WireNames_EveryState_HasItsOwnName()
    {
        var names = Enum.GetValues<TaskState>().Select(state => state.ToWire()).ToList();

        Assert.Equal(names.Count, names.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(names.Order(StringComparer.Ordinal), TaskStates.WireNames.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(TaskState.WaitingOnOffers, "WAITING_ON_OFFERS")]
    [InlineData(TaskState.Staging, "TASK_STAGING")]
    [InlineData(TaskState.Running, "TASK_RUNNING")]
    [InlineData(TaskState.Failed, "TASK_FAILED")]
    [InlineData(TaskState.GoneByOperator, "TASK_GONE_BY_OPERATOR")]
    [InlineData(TaskState.Unreachable, "TASK_UNREACHABLE")]
    public void ToWire_State_UsesTheMesosName(TaskState state, string expected) => Assert.Equal(expected, state.ToWire());

    [Theory]
    [InlineData("RUNNING")]
    [InlineData("task_running")]
    [InlineData(" TASK_RUNNING")]
    [InlineData("")]
    [InlineData(null)]
    public void TryParse_UnknownName_ReturnsFalse(string? name) => Assert.False(TaskStates.TryParse(name, out _));

    [Fact]
    public void Parse_UnknownName_ThrowsFormatExceptionNamingIt() =>
        Assert.Contains("'TASK_NAPPING'", Assert.Throws<FormatException>(() => TaskStates.Parse("TASK_NAPPING")).Message, StringComparison.Ordinal);

    [Theory]
    [MemberData(nameof(TerminalStates))]
    public void CanTransition_FromTerminalState_IsFalseForEveryTarget(TaskState from)
    {
        foreach (var to in Enum.GetValues<TaskState>())
            Assert.False(TaskStates.CanTransition(from, to), $"{from} -> {to}");
    }

    [Fact]
    public void CanTransition_FromWaitingOnOffers_OnlyToStagingKilledOrError()
    {
        var allowed = Enum.GetValues<TaskState>().Where(to => TaskStates.CanTransition(TaskState.WaitingOnOffers, to)).ToHashSet();

        Assert.Equal(new HashSet<TaskState> { TaskState.Staging, TaskState.Killed, TaskState.Error }, allowed);
    }

    [Theory]
    [MemberData(nameof(ActiveStates))]
    public void CanTransition_FromActiveState_ReachesEveryTerminalState(TaskState from)
    {
        foreach (var to in TaskStates.Terminal)
            Assert.True(TaskStates.CanTransition(from, to), $"{from} -> {to}");
    }

    [Theory]
    [InlineData(TaskState.Running)]
    [InlineData(TaskState.Starting)]
    [InlineData(TaskState.Staging)]
    [InlineData(TaskState.Unreachable)]
    [InlineData(TaskState.WaitingOnOffers)]
    public void CanTransition_FromKillingBackToALiveState_IsFalse(TaskState to) =>
        Assert.False(TaskStates.CanTransition(TaskState.Killing, to));

    [Theory]
    [InlineData(TaskState.Running, TaskState.Finished)]
    [InlineData(TaskState.Running, TaskState.Killing)]
    [InlineData(TaskState.Staging, TaskState.Running)]
    [InlineData(TaskState.Starting, TaskState.Running)]
    [InlineData(TaskState.Unreachable, TaskState.Running)]
    [InlineData(TaskState.Killing, TaskState.Killed)]
    public void CanTransition_ForwardStep_IsTrue(TaskState from, TaskState to) => Assert.True(TaskStates.CanTransition(from, to));

    [Theory]
    [InlineData(TaskState.Running, TaskState.Staging)]
    [InlineData(TaskState.Running, TaskState.Starting)]
    [InlineData(TaskState.Running, TaskState.WaitingOnOffers)]
    [InlineData(TaskState.Starting, TaskState.Staging)]
    [InlineData(TaskState.WaitingOnOffers, TaskState.Running)]
    [InlineData(TaskState.WaitingOnOffers, TaskState.Finished)]
    [InlineData(TaskState.WaitingOnOffers, TaskState.Lost)]
    [InlineData(TaskState.Unreachable, TaskState.Starting)]
    public void CanTransition_BackwardOrSkippedStep_IsFalse(TaskState from, TaskState to) =>
        Assert.False(TaskStates.CanTransition(from, to));

    [Fact]
    public void SystemFaults_IncludeThePlatformsFaults_NotTheTasksOwnEnds()
    {
        Assert.Superset(new HashSet<TaskState> { TaskState.Lost, TaskState.Error, TaskState.Dropped, TaskState.Gone }, TaskStates.SystemFaults.ToHashSet());
        Assert.Empty(TaskStates.SystemFaults.Intersect([TaskState.Failed, TaskState.Killed, TaskState.Finished]));
    }

    [Fact]
    public void SystemFaults_AreAllTerminal() => Assert.Subset(TaskStates.Terminal.ToHashSet(), TaskStates.SystemFaults.ToHashSet());

    [Fact]
    public void Predecessors_Staging_IsExactlyWaitingOnOffers() =>
        Assert.Equal([TaskState.WaitingOnOffers], TaskStates.Predecessors(TaskState.Staging));

    [Fact]
    public void Predecessors_Running_AreStagingStartingAndUnreachable() =>
        Assert.Equal(
            new HashSet<TaskState> { TaskState.Staging, TaskState.Starting, TaskState.Unreachable },
            TaskStates.Predecessors(TaskState.Running).ToHashSet());

    [Fact]
    public void Predecessors_WaitingOnOffers_IsEmpty() => Assert.Empty(TaskStates.Predecessors(TaskState.WaitingOnOffers));

    [Theory]
    [MemberData(nameof(AllStates))]
    public void IsActiveAndIsTerminal_AnyState_AreNeverBothTrue(TaskState state) =>
        Assert.False(state.IsActive() && state.IsTerminal(), state.ToWire());

    [Fact]
    public void IsActiveAndIsTerminal_WaitingOnOffers_AreBothFalse()
    {
        Assert.False(TaskState.WaitingOnOffers.IsActive());
        Assert.False(TaskState.WaitingOnOffers.IsTerminal());
    }

    [Fact]
    public void IsActive_Unreachable_IsTrueBecauseTheTaskMayStillRun()
    {
        Assert.True(TaskState.Unreachable.IsActive());
        Assert.False(TaskState.Unreachable.IsTerminal());
    }
}
