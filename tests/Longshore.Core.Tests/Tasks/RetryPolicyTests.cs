using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Tasks;

public sealed class RetryPolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
    private static readonly RetryOptions Options = new() { BackoffBase = TimeSpan.FromSeconds(1), BackoffCap = TimeSpan.FromSeconds(10) };

    private static TaskRun Run(int taskLeft, int systemLeft, int attempt = 1) => new()
    {
        MesosId = "fam.old",
        FamilyId = "fam",
        Definition = new TaskDefinition { Id = "fam" },
        State = TaskState.Running,
        Attempt = attempt,
        TaskRetriesLeft = taskLeft,
        SystemRetriesLeft = systemLeft,
        ExitCode = 3,
        Reason = "old",
    };

    [Fact]
    public void Failed_SpendsATaskRetry_AndWaitsOutTheBackoff()
    {
        var uuid = Guid.Parse("3ff3991c-e0e3-49a3-a522-7a03386ffda2");
        var next = new RetryPolicy(Options, () => 1).NextAttempt(Run(2, 2), TaskState.Failed, uuid, Now)!;

        Assert.Equal("fam.3ff3991c-e0e3-49a3-a522-7a03386ffda2", next.MesosId);
        Assert.Equal(2, next.Attempt);
        Assert.Equal(1, next.TaskRetriesLeft);
        Assert.Equal(2, next.SystemRetriesLeft);
        Assert.Equal("fam.old", next.RetryOf);
        Assert.Equal(TaskState.WaitingOnOffers, next.State);
        Assert.Equal(Now + TimeSpan.FromSeconds(1), next.NotBefore);
        Assert.Null(next.ExitCode);
        Assert.Null(next.Reason);
    }

    [Fact]
    public void Lost_SpendsASystemRetry()
    {
        var next = new RetryPolicy(Options, () => 0).NextAttempt(Run(0, 1), TaskState.Lost, Guid.NewGuid(), Now)!;

        Assert.Equal(0, next.SystemRetriesLeft);
        Assert.Equal(0, next.TaskRetriesLeft);
    }

    [Theory]
    [InlineData(TaskState.Failed, 0, 5)]
    [InlineData(TaskState.Lost, 5, 0)]
    [InlineData(TaskState.Killed, 5, 5)]
    [InlineData(TaskState.Finished, 5, 5)]
    public void NoRetryOwed_GivesNull(TaskState end, int taskLeft, int systemLeft) =>
        Assert.Null(new RetryPolicy(Options, () => 0.5).NextAttempt(Run(taskLeft, systemLeft), end, Guid.NewGuid(), Now));

    [Theory]
    [InlineData(1, 0.0, 500)]
    [InlineData(1, 1.0, 1000)]
    [InlineData(2, 1.0, 2000)]
    [InlineData(3, 0.0, 2000)]
    [InlineData(4, 1.0, 8000)]
    [InlineData(5, 1.0, 10000)]
    [InlineData(30, 0.0, 5000)]
    public void Backoff_DoublesWithEqualJitter_UpToTheCap(int attempt, double random, double expectedMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), new RetryPolicy(Options, () => random).Backoff(attempt));
}
