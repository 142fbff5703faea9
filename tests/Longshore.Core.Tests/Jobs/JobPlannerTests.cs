using Longshore.Core.Jobs;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Jobs;

public sealed class JobPlannerTests
{
    private static readonly DateTimeOffset T0 = TestClock.Now();
    private static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(10);
    private long _seq;

    private static TimeSpan Backoff(int attempt) => TimeSpan.FromSeconds(Math.Pow(2, attempt - 1));

    private static Job NewJob(int replicas, int generation = 1, JobState state = JobState.Running, string command = "sleep 600") => new()
    {
        Id = "web",
        Generation = generation,
        State = state,
        Definition = new JobDefinition
        {
            Id = "web",
            Tasks = [new JobGroup { Role = "api", Environment = "prod", Replicas = replicas, Container = new JobContainer { Image = "busybox", Command = [command] } }],
        },
    };

    private TaskRun Run(TaskState state, int generation = 1, int attempt = 1, TimeSpan? ran = null, string? retriedAs = null, int group = 0) => new()
    {
        MesosId = $"web-api-prod-{++_seq}",
        FamilyId = "web-api-prod",
        Definition = new TaskDefinition { Id = "web-api-prod" },
        State = state,
        Attempt = attempt,
        JobId = "web",
        JobGroup = group,
        Generation = generation,
        Seq = _seq,
        StartedAt = ran is null ? null : T0,
        FinishedAt = state.IsTerminal() && ran is not null ? T0 + ran : null,
        RetriedAs = retriedAs,
    };

    private static IReadOnlyList<JobAction> Plan(Job job, params TaskRun[] runs) => JobPlanner.Plan(job, runs, StableAfter, Backoff);

    [Fact]
    public void Plan_NoReplicasYet_LaunchesAllAtOnceWithoutDelay()
    {
        var actions = Plan(NewJob(replicas: 3));

        Assert.Equal(3, actions.Count);
        Assert.All(actions, a => Assert.Equal(new LaunchReplica(0, null, 1, TimeSpan.Zero), a));
    }

    [Fact]
    public void Plan_AtItsCount_DoesNothing()
    {
        Assert.Empty(Plan(NewJob(2), Run(TaskState.Running), Run(TaskState.WaitingOnOffers)));
    }

    [Fact]
    public void Plan_ReplicaCrashedQuickly_ReplacementWaitsGrowingBackoff()
    {
        var crashed = Run(TaskState.Failed, attempt: 3, ran: TimeSpan.FromSeconds(1));

        var launch = Assert.IsType<LaunchReplica>(Assert.Single(Plan(NewJob(1), crashed)));

        Assert.Same(crashed, launch.Replaces);
        Assert.Equal(4, launch.Attempt);
        Assert.Equal(Backoff(3), launch.Delay);
    }

    [Fact]
    public void Plan_ReplicaThatRanLongEnded_ReplacedAtOnceAsAFreshStart()
    {
        var ended = Run(TaskState.Failed, attempt: 5, ran: TimeSpan.FromMinutes(3));

        var launch = Assert.IsType<LaunchReplica>(Assert.Single(Plan(NewJob(1), ended)));

        Assert.Equal(1, launch.Attempt);
        Assert.Equal(TimeSpan.Zero, launch.Delay);
    }

    [Fact]
    public void Plan_ReplicaNeverStarted_CountsAsAQuickCrash()
    {
        var failed = Run(TaskState.Failed, attempt: 1, ran: null);

        var launch = Assert.IsType<LaunchReplica>(Assert.Single(Plan(NewJob(1), failed)));

        Assert.Equal(2, launch.Attempt);
        Assert.Equal(Backoff(1), launch.Delay);
    }

    [Fact]
    public void Plan_AlreadyReplacedRuns_AreNotReplacedAgain()
    {
        var replaced = Run(TaskState.Failed, ran: TimeSpan.FromSeconds(1), retriedAs: "other");
        var running = Run(TaskState.Running);

        Assert.Empty(Plan(NewJob(1), replaced, running));
    }

    [Fact]
    public void Plan_ScaleDown_KillsTheNewestFirst_AndIgnoresRunsAlreadyDying()
    {
        var oldest = Run(TaskState.Running);
        var middle = Run(TaskState.Running);
        var newest = Run(TaskState.Running);
        var dying = Run(TaskState.Killing);

        var kills = Plan(NewJob(1), oldest, middle, newest, dying).Cast<KillReplica>().Select(k => k.MesosId).ToList();

        Assert.Equal([newest.MesosId, middle.MesosId], kills);
    }

    [Fact]
    public void Plan_StoppedJob_KillsEveryLiveReplica_LaunchesNothing()
    {
        var actions = Plan(NewJob(3, state: JobState.Stopped), Run(TaskState.Running), Run(TaskState.WaitingOnOffers), Run(TaskState.Failed, ran: TimeSpan.FromSeconds(1)));

        Assert.Equal(2, actions.Count);
        Assert.All(actions, a => Assert.Equal("job deleted", Assert.IsType<KillReplica>(a).Reason));
    }

    [Fact]
    public void Plan_NewGeneration_StartsOneNewReplicaBeforeKillingAnyOld()
    {
        var actions = Plan(NewJob(3, generation: 2), Run(TaskState.Running), Run(TaskState.Running), Run(TaskState.Running));

        var launch = Assert.IsType<LaunchReplica>(Assert.Single(actions));
        Assert.Equal(1, launch.Attempt);
    }

    [Fact]
    public void Plan_NewReplicaStillStarting_WaitsWithoutKillingOrLaunching()
    {
        Assert.Empty(Plan(NewJob(3, generation: 2), Run(TaskState.Running), Run(TaskState.Running), Run(TaskState.Running), Run(TaskState.Staging, generation: 2)));
    }

    [Fact]
    public void Plan_NewReplicaRunning_KillsOneOldAndStartsTheNext()
    {
        var old1 = Run(TaskState.Running);
        var old2 = Run(TaskState.Running);
        var old3 = Run(TaskState.Running);
        var fresh = Run(TaskState.Running, generation: 2);

        var actions = Plan(NewJob(3, generation: 2), old1, old2, old3, fresh);

        var kill = Assert.Single(actions.OfType<KillReplica>());
        Assert.Equal(old3.MesosId, kill.MesosId);
        Assert.Single(actions.OfType<LaunchReplica>());
    }

    [Fact]
    public void Plan_Rollover_NeverLeavesFewerRunningThanWanted()
    {
        // Simulate the whole rollover: each step applies the plan; new replicas start running one step later.
        var runs = new List<TaskRun> { Run(TaskState.Running), Run(TaskState.Running), Run(TaskState.Running) };
        var job = NewJob(3, generation: 2);
        for (var step = 0; step < 20; step++)
        {
            runs = runs.Select(r => r.State == TaskState.Staging ? r with { State = TaskState.Running } : r).ToList();
            foreach (var action in Plan(job, [.. runs]))
            {
                if (action is KillReplica kill)
                    runs = runs.Select(r => r.MesosId == kill.MesosId ? r with { State = TaskState.Killed } : r).ToList();
                else
                    runs.Add(Run(TaskState.Staging, generation: 2));
            }

            Assert.True(runs.Count(r => r.State == TaskState.Running) >= 3 || runs.Any(r => r.State == TaskState.Staging),
                $"step {step}: only {runs.Count(r => r.State == TaskState.Running)} running");
            Assert.True(runs.Count(r => r.State == TaskState.Running) >= 2);
        }

        var live = runs.Where(r => r.State == TaskState.Running).ToList();
        Assert.Equal(3, live.Count);
        Assert.All(live, r => Assert.Equal(2, r.Generation));
    }

    [Fact]
    public void Plan_RunsOfARemovedGroup_AreKilled()
    {
        var stray = Run(TaskState.Running, group: 4);

        var kill = Assert.IsType<KillReplica>(Assert.Single(Plan(NewJob(0), stray)));

        Assert.Equal(stray.MesosId, kill.MesosId);
    }

    [Theory]
    [InlineData(new string[0], null)]
    [InlineData(new[] { "echo hi; exit 1" }, "echo hi; exit 1")]
    [InlineData(new[] { "sh", "-c", "echo 'quoted' $HOME" }, "exec 'sh' '-c' 'echo '\\''quoted'\\'' $HOME'")]
    public void ShellCommand_OneLineIsAShellLine_SeveralAreQuotedArgv(string[] command, string? expected)
    {
        Assert.Equal(expected, JobReplicas.ShellCommand([.. command]));
    }

    [Fact]
    public void ToTaskDefinition_MissingOrZeroResources_TakeDefaultsEachOnItsOwn()
    {
        var group = new JobGroup { Role = "r", Environment = "e", Cluster = "east", Container = new JobContainer { Image = "busybox" }, Resources = new JobResources { Cpu = 0, Memory = 64 } };

        var definition = JobReplicas.ToTaskDefinition("job", group);

        Assert.Equal(JobReplicas.DefaultCpu, definition.Cpus);
        Assert.Equal(64, definition.Mem);
        Assert.Equal("job-r-e", definition.Id);
        Assert.Equal(["cluster", "EQUAL", "east"], Assert.Single(definition.Constraints!));
        Assert.Equal(0, definition.TaskRetries);
    }
}
