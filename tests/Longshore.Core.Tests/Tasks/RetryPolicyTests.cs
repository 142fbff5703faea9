using Longshore.Core.Tasks;
using Microsoft.Extensions.Time.Testing;

namespace Longshore.Core.Tests.Tasks;

public sealed class RetryPolicyTests
{
    private static readonly DateTimeOffset Start = TestClock.Now();
    private static readonly DateTimeOffset Then = Start.AddHours(-1);
    private static readonly RetryOptions Options = new() { BackoffBase = TimeSpan.FromSeconds(1), BackoffCap = TimeSpan.FromSeconds(10) };
    private static readonly Guid Uuid = Guid.Parse("3ff3991c-e0e3-49a3-a522-7a03386ffda2");
    private readonly FakeTimeProvider _time = new(Start);

    private static TaskRun Ended(int taskLeft, int systemLeft, int attempt = 1) => new()
    {
        MesosId = "fam.old",
        FamilyId = "fam",
        Definition = new TaskDefinition { Id = "fam", TaskRetries = 5, SystemRetries = 5 },
        State = TaskState.Failed,
        Attempt = attempt,
        TaskRetriesLeft = taskLeft,
        SystemRetriesLeft = systemLeft,
        NotBefore = Then,
        CreatedAt = Then,
        StagedAt = Then,
        StartedAt = Then,
        FinishedAt = Then,
        UpdatedAt = Then,
        ExitCode = 3,
        Reason = "old",
        Agent = "host-1",
        ContainerId = "c0ffee",
        RetriedAs = "fam.stale",
        JobId = "job",
        JobGroup = 1,
        Generation = 4,
        QueueId = "q",
        MessageKey = "m-1",
        Seq = 42,
    };

    private static RetryPolicy Policy(double random) => new(Options, () => random);

    [Fact]
    public void NextAttempt_FailedWithTaskRetriesLeft_StartsTheNextAttemptAfterTheBackoff()
    {
        var now = _time.GetUtcNow();
        var old = Ended(taskLeft: 2, systemLeft: 2);

        var next = Policy(0.5).NextAttempt(old, TaskState.Failed, Uuid, now);

        Assert.NotNull(next);
        Assert.Equal("fam.3ff3991c-e0e3-49a3-a522-7a03386ffda2", next.MesosId);
        Assert.Equal("fam", next.FamilyId);
        Assert.Equal(2, next.Attempt);
        Assert.Equal(1, next.TaskRetriesLeft);
        Assert.Equal(2, next.SystemRetriesLeft);
        Assert.Equal("fam.old", next.RetryOf);
        Assert.Equal(TaskState.WaitingOnOffers, next.State);
        Assert.Equal(now + TimeSpan.FromMilliseconds(750), next.NotBefore);
        Assert.Equal(now, next.CreatedAt);
        Assert.Equal(now, next.UpdatedAt);
        Assert.Same(old.Definition, next.Definition);
    }

    [Fact]
    public void NextAttempt_Retry_ClearsWhatBelongedToTheEndedRun()
    {
        var next = Policy(0).NextAttempt(Ended(1, 1), TaskState.Failed, Uuid, _time.GetUtcNow())!;

        Assert.Null(next.StagedAt);
        Assert.Null(next.StartedAt);
        Assert.Null(next.FinishedAt);
        Assert.Null(next.ExitCode);
        Assert.Null(next.Reason);
        Assert.Null(next.Agent);
        Assert.Null(next.ContainerId);
        Assert.Null(next.RetriedAs);
        Assert.Equal(0, next.Seq);
    }

    [Fact]
    public void NextAttempt_Retry_KeepsItsJobAndQueueLinks()
    {
        var next = Policy(0).NextAttempt(Ended(0, 1), TaskState.Lost, Uuid, _time.GetUtcNow())!;

        Assert.Equal("job", next.JobId);
        Assert.Equal(1, next.JobGroup);
        Assert.Equal(4, next.Generation);
        Assert.Equal("q", next.QueueId);
        Assert.Equal("m-1", next.MessageKey);
    }

    [Fact]
    public void NextAttempt_FailedWithNoTaskRetriesLeft_ReturnsNullEvenWithSystemRetriesLeft() =>
        Assert.Null(Policy(0).NextAttempt(Ended(taskLeft: 0, systemLeft: 5), TaskState.Failed, Uuid, _time.GetUtcNow()));

    [Theory]
    [InlineData(TaskState.Lost)]
    [InlineData(TaskState.Error)]
    [InlineData(TaskState.Dropped)]
    [InlineData(TaskState.Gone)]
    public void NextAttempt_SystemFault_SpendsASystemRetryNotATaskRetry(TaskState end)
    {
        var next = Policy(0).NextAttempt(Ended(taskLeft: 3, systemLeft: 2), end, Uuid, _time.GetUtcNow());

        Assert.NotNull(next);
        Assert.Equal(3, next.TaskRetriesLeft);
        Assert.Equal(1, next.SystemRetriesLeft);
        Assert.Equal(2, next.Attempt);
    }

    [Fact]
    public void NextAttempt_LostWithNoSystemRetriesLeft_ReturnsNullEvenWithTaskRetriesLeft() =>
        Assert.Null(Policy(0).NextAttempt(Ended(taskLeft: 5, systemLeft: 0), TaskState.Lost, Uuid, _time.GetUtcNow()));

    [Theory]
    [InlineData(TaskState.Killed)]
    [InlineData(TaskState.Finished)]
    [InlineData(TaskState.Unreachable)]
    [InlineData(TaskState.Running)]
    public void NextAttempt_EndThatIsNeitherFailureNorFault_ReturnsNull(TaskState end) =>
        Assert.Null(Policy(0).NextAttempt(Ended(taskLeft: 5, systemLeft: 5), end, Uuid, _time.GetUtcNow()));

    [Fact]
    public void NextAttempt_LaterAttempt_BacksOffByThatAttemptsNominal()
    {
        var now = _time.GetUtcNow();

        var next = Policy(1).NextAttempt(Ended(1, 1, attempt: 3), TaskState.Failed, Uuid, now)!;

        Assert.Equal(4, next.Attempt);
        Assert.Equal(now + TimeSpan.FromSeconds(4), next.NotBefore);
    }

    [Fact]
    public void NextAttempt_RepeatedFailures_StopWhenTaskRetriesRunOut()
    {
        var policy = Policy(1);
        var run = Ended(taskLeft: 3, systemLeft: 0);
        var chain = new List<TaskRun> { run };
        for (var i = 0; i < 10; i++)
        {
            _time.Advance(TimeSpan.FromMinutes(1));
            var next = policy.NextAttempt(chain[^1], TaskState.Failed, Guid.NewGuid(), _time.GetUtcNow());
            if (next is null)
                break;
            chain.Add(next);
        }

        Assert.Equal([1, 2, 3, 4], chain.Select(r => r.Attempt));
        Assert.Equal([3, 2, 1, 0], chain.Select(r => r.TaskRetriesLeft));
        for (var i = 1; i < chain.Count; i++)
            Assert.Equal(chain[i - 1].MesosId, chain[i].RetryOf);
    }

    [Theory]
    [InlineData(1, 0.0, 500)]
    [InlineData(1, 1.0, 1000)]
    [InlineData(1, 0.5, 750)]
    [InlineData(2, 0.0, 1000)]
    [InlineData(2, 1.0, 2000)]
    [InlineData(3, 1.0, 4000)]
    [InlineData(4, 0.0, 4000)]
    [InlineData(4, 1.0, 8000)]
    public void Backoff_FixedRandom_IsHalfPlusRandomHalfOfADoublingNominal(int attempt, double random, double expectedMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), Policy(random).Backoff(attempt));

    [Theory]
    [InlineData(5, 1.0, 10000)]
    [InlineData(5, 0.0, 5000)]
    [InlineData(30, 1.0, 10000)]
    [InlineData(1000, 1.0, 10000)]
    [InlineData(int.MaxValue, 0.0, 5000)]
    public void Backoff_PastTheCap_StaysAtTheCap(int attempt, double random, double expectedMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), Policy(random).Backoff(attempt));

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Backoff_AttemptBelowOne_UsesTheBase(int attempt) =>
        Assert.Equal(TimeSpan.FromSeconds(1), Policy(1).Backoff(attempt));

    [Fact]
    public void Backoff_DefaultOptions_StartAtOneSecondAndStopAtFiveMinutes()
    {
        var policy = new RetryPolicy(new RetryOptions(), () => 1);

        Assert.Equal(TimeSpan.FromSeconds(1), policy.Backoff(1));
        Assert.Equal(TimeSpan.FromSeconds(256), policy.Backoff(9));
        Assert.Equal(TimeSpan.FromMinutes(5), policy.Backoff(10));
    }
}
