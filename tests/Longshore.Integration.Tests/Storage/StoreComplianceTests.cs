using System.Diagnostics;
using Longshore.Core.Execution;
using Longshore.Core.Jobs;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;

namespace Longshore.Integration.Tests.Storage;

/// <summary>
/// The state store contract, run unchanged against every implementation and its real server. Each test gets a store of
/// its own (a fresh file, schema or key prefix); <see cref="OpenAnotherAsync"/> opens a second client on the same store,
/// as a second Longshore instance would.
/// </summary>
public abstract partial class StoreComplianceTests : IAsyncLifetime
{
    /// <summary>Runs in the volume test: enough to see a listing that scans or sorts everything; 1,000,000 is in bench/.</summary>
    protected virtual int VolumeRuns => 10_000;

    private readonly List<IStateStore> _opened = [];
    protected static readonly DateTimeOffset T0 = TestClock.Now(TimeSpan.FromSeconds(1));

    protected IStateStore Store { get; private set; } = null!;

    protected abstract Task<IStateStore> OpenStoreAsync();

    /// <summary>A second client on the store <see cref="OpenStoreAsync"/> opened.</summary>
    protected abstract Task<IStateStore> OpenSecondClientAsync();

    protected virtual Task DropStoreAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Store = await Track(OpenStoreAsync());

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
            await store.DisposeAsync();
        await DropStoreAsync();
    }

    protected Task<IStateStore> OpenAnotherAsync() => Track(OpenSecondClientAsync());

    private async Task<IStateStore> Track(Task<IStateStore> opening)
    {
        var store = await opening;
        _opened.Add(store);
        return store;
    }

    protected static TaskRun NewRun(string family = "fam", DateTimeOffset? at = null, string? queueId = null, string? messageKey = null, string? jobId = null) =>
        TaskRun.CreateFirst(new TaskDefinition
        {
            Id = family,
            Cmd = "echo hi",
            Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } },
            Env = new Dictionary<string, string> { ["A"] = "1" },
            TaskRetries = 1,
        }, Guid.NewGuid(), at ?? T0) with { QueueId = queueId, MessageKey = messageKey, JobId = jobId, JobGroup = jobId is null ? null : 0, Generation = jobId is null ? null : 1 };

    protected static RunTransition Move(TaskRun run, TaskState from, TaskState to) => new(run.MesosId, [from], to, T0.AddSeconds(1));

    [Fact]
    public async Task InsertAsync_ThenGetAsync_RoundTripsEveryField()
    {
        var run = NewRun(queueId: "q", messageKey: "m1") with { Attempt = 2, RetryOf = "fam.x", NotBefore = T0.AddSeconds(5), TaskRetriesLeft = 3, SystemRetriesLeft = 1 };
        await Store.InsertAsync(run);
        var stored = await Store.GetAsync(run.MesosId);
        Assert.NotNull(stored);
        Assert.Equal(run with { Seq = stored.Seq, Definition = stored.Definition }, stored);
        Assert.Equal(run.Definition.Cmd, stored.Definition.Cmd);
        Assert.Equal("1", stored.Definition.Env!["A"]);
        Assert.Null(await Store.GetAsync("missing.1"));
    }

    [Fact]
    public async Task TryTransitionAsync_FromOtherState_ChangesNothing()
    {
        var run = NewRun();
        await Store.InsertAsync(run);
        Assert.False(await Store.TryTransitionAsync(Move(run, TaskState.Running, TaskState.Finished)));
        Assert.Equal(TaskState.WaitingOnOffers, (await Store.GetAsync(run.MesosId))!.State);
        Assert.True(await Store.TryTransitionAsync(Move(run, TaskState.WaitingOnOffers, TaskState.Staging)));
        var staged = (await Store.GetAsync(run.MesosId))!;
        Assert.Equal(TaskState.Staging, staged.State);
        Assert.Equal(T0.AddSeconds(1), staged.StagedAt);
    }

    [Fact]
    public async Task TryTransitionAsync_EndWithRetry_StoresLogsAndRetryAtomically()
    {
        var run = NewRun();
        await Store.InsertAsync(run);
        await Store.TryTransitionAsync(Move(run, TaskState.WaitingOnOffers, TaskState.Staging));
        await Store.TryTransitionAsync(Move(run, TaskState.Staging, TaskState.Running) with { ContainerId = "c1", Agent = "host" });
        var retry = NewRun() with { Attempt = 2, RetryOf = run.MesosId };
        Assert.True(await Store.TryTransitionAsync(Move(run, TaskState.Running, TaskState.Failed) with
        {
            ExitCode = 3, Reason = "exit 3", Logs = new TaskLogs("out", "err", false), Retry = retry,
        }));
        var ended = (await Store.GetAsync(run.MesosId))!;
        Assert.Equal((TaskState.Failed, 3, "exit 3", "c1", "host", retry.MesosId), (ended.State, ended.ExitCode, ended.Reason, ended.ContainerId, ended.Agent, ended.RetriedAs));
        Assert.NotNull(ended.FinishedAt);
        Assert.NotNull(ended.StartedAt);
        Assert.Equal(new TaskLogs("out", "err", false), await Store.GetLogsAsync(run.MesosId));
        Assert.Equal(run.MesosId, (await Store.GetAsync(retry.MesosId))!.RetryOf);
        Assert.True(await Store.DeleteTerminalAsync(run.MesosId));
        Assert.Null(await Store.GetLogsAsync(run.MesosId));
        Assert.False(await Store.DeleteTerminalAsync(retry.MesosId));
    }

    [Fact]
    public async Task TryTransitionAsync_EndCarryingItsStart_RecordsTheStart_UnlessOneIsRecorded()
    {
        var unstarted = NewRun();
        var started = NewRun();
        foreach (var run in (TaskRun[])[unstarted, started])
        {
            await Store.InsertAsync(run);
            Assert.True(await Store.TryTransitionAsync(Move(run, TaskState.WaitingOnOffers, TaskState.Staging)));
        }

        Assert.True(await Store.TryTransitionAsync(Move(started, TaskState.Staging, TaskState.Running)));
        // Both end with a start carried along (T0+2s); only the run without a recorded start takes it.
        foreach (var (run, from) in (ValueTuple<TaskRun, TaskState>[])[(unstarted, TaskState.Staging), (started, TaskState.Running)])
        {
            Assert.True(await Store.TryTransitionAsync(new RunTransition(run.MesosId, [from], TaskState.Finished, T0.AddSeconds(3))
            {
                ExitCode = 0, StartedAt = T0.AddSeconds(2),
            }));
        }

        var ended = (await Store.GetAsync(unstarted.MesosId))!;
        Assert.Equal((TaskState.Finished, T0.AddSeconds(2), T0.AddSeconds(3)), (ended.State, ended.StartedAt, ended.FinishedAt));
        Assert.Equal(T0.AddSeconds(1), (await Store.GetAsync(started.MesosId))!.StartedAt);
    }

    [Fact]
    public async Task TryTransitionAsync_ManyWritersOnTwoClients_ExactlyOneWinsEachRun()
    {
        var other = await OpenAnotherAsync();
        var runs = Enumerable.Range(0, 50).Select(_ => NewRun("race")).ToList();
        foreach (var run in runs)
            await Store.InsertAsync(run);
        var attempts = runs.SelectMany(run => Enumerable.Range(0, 6).Select(i =>
            (i % 2 == 0 ? Store : other).TryTransitionAsync(Move(run, TaskState.WaitingOnOffers, TaskState.Staging)))).ToList();
        var results = await Task.WhenAll(attempts);
        Assert.Equal(runs.Count, results.Count(won => won));
        Assert.All(await Store.ListActiveAsync(), run => Assert.Equal(TaskState.Staging, run.State));
    }

    [Fact]
    public async Task TryUpdateJobAsync_ConcurrentReadModifyWrite_LosesNoUpdate()
    {
        var other = await OpenAnotherAsync();
        var job = new Job { Id = "j", Definition = new JobDefinition { Id = "j", Tasks = [] }, CreatedAt = T0, UpdatedAt = T0 };
        Assert.True(await Store.CreateJobAsync(job));
        const int writers = 8, increments = 5;
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var store = w % 2 == 0 ? Store : other;
            for (var i = 0; i < increments; i++)
            {
                while (true)
                {
                    var current = (await store.GetJobAsync("j"))!;
                    if (await store.TryUpdateJobAsync(current with { Generation = current.Generation + 1 }, current.Version))
                        break;
                }
            }
        })));
        Assert.Equal(1 + writers * increments, (await Store.GetJobAsync("j"))!.Generation);
    }

    [Fact]
    public async Task CreateJobAsync_RunningExists_RefusedStoppedReplaced()
    {
        var job = new Job { Id = "j", Definition = new JobDefinition { Id = "j", Tasks = [] }, CreatedAt = T0, UpdatedAt = T0 };
        Assert.True(await Store.CreateJobAsync(job));
        Assert.False(await Store.CreateJobAsync(job));
        var stored = (await Store.GetJobAsync("j"))!;
        Assert.True(await Store.TryUpdateJobAsync(stored with { State = JobState.Stopped }, stored.Version));
        Assert.False(await Store.TryUpdateJobAsync(stored with { State = JobState.Stopped }, stored.Version));
        Assert.True(await Store.CreateJobAsync(job));
        Assert.Equal(2, (await Store.GetJobAsync("j"))!.Generation);
        Assert.Single(await Store.ListJobsAsync());
    }

    [Fact]
    public async Task InsertReplicaAsync_SameEndedRunTwice_ReplacedOnce()
    {
        var first = NewRun("j-web-test", jobId: "j");
        Assert.True(await Store.InsertReplicaAsync(first, null));
        var replacement = NewRun("j-web-test", jobId: "j");
        Assert.False(await Store.InsertReplicaAsync(replacement, first.MesosId));
        await Store.TryTransitionAsync(Move(first, TaskState.WaitingOnOffers, TaskState.Error));
        var results = await Task.WhenAll(Store.InsertReplicaAsync(replacement, first.MesosId), Store.InsertReplicaAsync(NewRun("j-web-test", jobId: "j"), first.MesosId));
        Assert.Single(results, won => won);
        var runs = await Store.ListJobRunsAsync("j", 10);
        Assert.Equal(2, runs.Count);
        Assert.Equal(TaskState.WaitingOnOffers, runs[0].State);
    }

    [Fact]
    public async Task ListAsync_PagesWhileInserting_EveryEarlierRunOnce()
    {
        var existing = new List<string>();
        for (var i = 0; i < 60; i++)
        {
            var run = NewRun(i % 2 == 0 ? "even" : "odd");
            await Store.InsertAsync(run);
            existing.Add(run.MesosId);
        }

        var seen = new List<string>();
        string? after = null;
        while (true)
        {
            var page = await Store.ListAsync(new RunQuery(7, after));
            if (page.Count == 0)
                break;
            seen.AddRange(page.Select(run => run.MesosId));
            after = page[^1].MesosId;
            await Store.InsertAsync(NewRun("even"));
        }

        existing.Reverse();
        Assert.Equal(existing, seen);
        var evens = await Store.ListAsync(new RunQuery(100, FamilyId: "even"));
        Assert.All(evens, run => Assert.Equal("even", run.FamilyId));
        Assert.True(evens.Zip(evens.Skip(1)).All(pair => pair.First.Seq > pair.Second.Seq));
        Assert.Empty(await Store.ListAsync(new RunQuery(10, State: TaskState.Running)));
        // After a run that is not stored: nothing (the API reads the run only then, to answer 400 rather than an empty page).
        Assert.Empty(await Store.ListAsync(new RunQuery(10, "missing.1")));
    }

    [Fact]
    public async Task ListDueAsync_BackoffAndActiveRuns_OnlyDueOldestFirst()
    {
        var late = NewRun("a") with { NotBefore = T0.AddMinutes(5) };
        var first = NewRun("a");
        var second = NewRun("b");
        var staged = NewRun("b");
        foreach (var run in new[] { late, first, second, staged })
            await Store.InsertAsync(run);
        await Store.TryTransitionAsync(Move(staged, TaskState.WaitingOnOffers, TaskState.Staging));
        Assert.Equal([first.MesosId, second.MesosId], (await Store.ListDueAsync(T0.AddSeconds(1), 10, [])).Select(run => run.MesosId));
        Assert.Equal([second.MesosId], (await Store.ListDueAsync(T0.AddSeconds(1), 10, ["a"])).Select(run => run.MesosId));
        Assert.Equal(T0, await Store.NextDueAsync());
        Assert.Equal(new Dictionary<string, int> { ["b"] = 1 }, await Store.CountActiveByFamilyAsync());
        var counts = await Store.CountByStateAsync();
        Assert.Equal((3L, 1L), (counts[TaskState.WaitingOnOffers], counts[TaskState.Staging]));
        var mark = await Store.ChangeMarkAsync();
        await Store.TryTransitionAsync(Move(staged, TaskState.Staging, TaskState.Finished));
        Assert.NotEqual(mark, await Store.ChangeMarkAsync());
        var activity = await Store.ActivityAsync(T0.AddMinutes(-1));
        Assert.Equal((1, 1, 0), (activity.Sum(b => b.Launches), activity.Sum(b => b.Finished), activity.Sum(b => b.Failures)));
    }

    [Fact]
    public async Task EnqueueAsync_BatchesAndState_SettledOnceWhenChainEnds()
    {
        var queue = new StoredQueue { Id = "q", Template = new TaskDefinition { Id = "q", Cmd = "echo" }, Block = new QueueBlock { Type = "cron", Name = "q" }, CreatedAt = T0 };
        Assert.True(await Store.CreateQueueAsync(queue));
        Assert.False(await Store.CreateQueueAsync(queue));
        var ok = NewRun("q", queueId: "q", messageKey: "k1");
        var bad = NewRun("q", queueId: "q", messageKey: "k2");
        await Store.EnqueueAsync("q", [new QueueBatch(ok, ["h1", "h2"]), new QueueBatch(bad, ["h3"])], new Dictionary<string, string> { ["watermark"] = "7" });
        Assert.Equal("7", (await Store.GetSourceStateAsync("q"))["watermark"]);
        Assert.Equal(new HashSet<string> { "h1", "h2", "h3" }, await Store.PendingHandlesAsync("q"));
        Assert.Equal(2, (await Store.QueueLoadAsync("q")).Active);
        await Store.TryTransitionAsync(Move(ok, TaskState.WaitingOnOffers, TaskState.Staging));
        await Store.TryTransitionAsync(Move(ok, TaskState.Staging, TaskState.Finished));
        await Store.TryTransitionAsync(Move(bad, TaskState.WaitingOnOffers, TaskState.Error));
        var ended = (await Store.ListEndedBatchesAsync(10)).OrderBy(b => b.MessageKey).ToList();
        Assert.Equal([("k1", true), ("k2", false)], ended.Select(b => (b.MessageKey, b.Succeeded)));
        Assert.Equal(["h1", "h2"], ended[0].Handles);
        Assert.True(await Store.SettleBatchAsync("k1", acknowledged: true));
        Assert.False(await Store.SettleBatchAsync("k1", acknowledged: true));
        Assert.Equal(new HashSet<string> { "h3" }, await Store.PendingHandlesAsync("q"));

        await Store.RecordPollAsync("q", T0, "boom", T0.AddSeconds(60));
        var polled = (await Store.GetQueueAsync("q"))!;
        Assert.Equal(("boom", T0.AddSeconds(60)), (polled.LastError, polled.NextPollAt));
        Assert.True(await Store.UpdateQueueAsync(polled with { Block = polled.Block with { Status = "DISABLED" } }));
        Assert.False((await Store.GetQueueAsync("q"))!.Enabled);
        Assert.Single(await Store.ListQueuesAsync());
        Assert.True(await Store.DeleteQueueAsync("q"));
        Assert.Empty(await Store.GetSourceStateAsync("q"));
        Assert.False(await Store.DeleteQueueAsync("q"));
    }

    [Fact]
    public async Task EnqueueAsync_WithThePoll_RecordsItAndClearsTheError_AndADeletedQueueStaysDeleted()
    {
        var queue = new StoredQueue { Id = "pq", Template = new TaskDefinition { Id = "pq", Cmd = "echo" }, Block = new QueueBlock { Type = "cron", Name = "pq" }, CreatedAt = T0 };
        Assert.True(await Store.CreateQueueAsync(queue));
        await Store.RecordPollAsync("pq", T0, "boom", T0.AddSeconds(60));

        await Store.EnqueueAsync("pq", [new QueueBatch(NewRun("pq", queueId: "pq", messageKey: "pk1"), ["h1"])], new Dictionary<string, string> { ["watermark"] = "3" },
            new PollRecord(T0.AddSeconds(5), T0.AddSeconds(6)));
        var polled = (await Store.GetQueueAsync("pq"))!;
        Assert.Equal((T0.AddSeconds(5), (string?)null, T0.AddSeconds(6)), (polled.LastPollAt, polled.LastError, polled.NextPollAt));
        Assert.Equal("3", (await Store.GetSourceStateAsync("pq"))["watermark"]);
        Assert.Equal(1, (await Store.QueueLoadAsync("pq")).Active);

        // A poll that ends after its queue was deleted: its runs are kept, the queue is not brought back.
        Assert.True(await Store.DeleteQueueAsync("pq"));
        await Store.EnqueueAsync("pq", [new QueueBatch(NewRun("pq", queueId: "pq", messageKey: "pk2"), ["h2"])], new Dictionary<string, string>(),
            new PollRecord(T0.AddSeconds(7), T0.AddSeconds(8)));
        Assert.Null(await Store.GetQueueAsync("pq"));
        Assert.Empty(await Store.ListQueuesAsync());
        Assert.Equal(2, (await Store.QueueLoadAsync("pq")).Active);
    }

    [Fact]
    public async Task TryAcquireLeaseAsync_HeldThenExpired_NextHolderGetsNewerTerm()
    {
        var other = await OpenAnotherAsync();
        Assert.Null(await Store.GetLeaseAsync());
        var a = await Store.TryAcquireLeaseAsync("a", TimeSpan.FromSeconds(10), T0);
        Assert.Equal(new Lease("a", 1, T0.AddSeconds(10)), a);
        Assert.Equal(a, await other.TryAcquireLeaseAsync("b", TimeSpan.FromSeconds(10), T0.AddSeconds(5)));
        Assert.Equal(new Lease("a", 1, T0.AddSeconds(16)), await Store.TryAcquireLeaseAsync("a", TimeSpan.FromSeconds(10), T0.AddSeconds(6)));
        var b = await other.TryAcquireLeaseAsync("b", TimeSpan.FromSeconds(10), T0.AddSeconds(16));
        Assert.Equal(new Lease("b", 2, T0.AddSeconds(26)), b);
        await Store.ReleaseLeaseAsync("a", 1);
        Assert.Equal(b, await Store.GetLeaseAsync());
        await other.ReleaseLeaseAsync("b", 2);
        Assert.Equal(3, (await Store.TryAcquireLeaseAsync("a", TimeSpan.FromSeconds(10), T0.AddSeconds(17))).Term);
        Assert.Equal(new Lease("c", 4, T0.AddSeconds(28)), await other.TryAcquireLeaseAsync("c", TimeSpan.FromSeconds(10), T0.AddSeconds(18), takeOver: true));
    }

    [Fact]
    public async Task Settings_SetReplacedAndRemoved_SeenByAnotherClient_AndFencedLikeEveryWrite()
    {
        const string key = "mesos.framework_id";
        var other = await OpenAnotherAsync();
        Assert.Null(await Store.GetSettingAsync(key));
        await Store.SetSettingAsync(key, "fw-1");
        Assert.Equal("fw-1", await other.GetSettingAsync(key));
        await other.SetSettingAsync(key, "fw-2");
        Assert.Equal("fw-2", await Store.GetSettingAsync(key));
        // Settings are apart from the store's own metadata.
        Assert.Null(await Store.GetSettingAsync("instance_id"));

        var old = await Store.TryAcquireLeaseAsync("old", TimeSpan.FromSeconds(10), T0);
        await other.TryAcquireLeaseAsync("new", TimeSpan.FromSeconds(10), T0.AddSeconds(11));
        await Task.Run(async () =>
        {
            Fencing.Enter(old.Term);
            await Assert.ThrowsAsync<StaleTermException>(() => Store.SetSettingAsync(key, "from-a-deposed-leader"));
        });
        Assert.Equal("fw-2", await other.GetSettingAsync(key));

        await Store.SetSettingAsync(key, null);
        Assert.Null(await other.GetSettingAsync(key));
    }

    [Fact]
    public async Task TryAcquireLeaseAsync_ManyCandidatesAtOnce_OneLeader()
    {
        var other = await OpenAnotherAsync();
        var leases = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            (i % 2 == 0 ? Store : other).TryAcquireLeaseAsync($"c{i}", TimeSpan.FromSeconds(10), T0)));
        var winners = leases.Select(lease => lease.Holder).Distinct().ToList();
        Assert.Single(winners);
        Assert.All(leases, lease => Assert.Equal(1, lease.Term));
    }

    [Fact]
    public async Task Writes_UnderOlderTerm_RefusedAndChangeNothing()
    {
        var run = NewRun();
        var job = NewRun("j-web-test", jobId: "j");
        await Store.InsertAsync(run);
        var old = await Store.TryAcquireLeaseAsync("old", TimeSpan.FromSeconds(10), T0);
        await Task.Run(async () =>
        {
            Fencing.Enter(old.Term);
            Assert.True(await Store.TryTransitionAsync(Move(run, TaskState.WaitingOnOffers, TaskState.Staging)));
        });
        var other = await OpenAnotherAsync();
        await other.TryAcquireLeaseAsync("new", TimeSpan.FromSeconds(10), T0.AddSeconds(11));
        await Task.Run(async () =>
        {
            Fencing.Enter(old.Term);
            var refused = await Assert.ThrowsAsync<StaleTermException>(() => Store.TryTransitionAsync(Move(run, TaskState.Staging, TaskState.Running)));
            Assert.Equal((1L, 2L), (refused.Term, refused.StoredTerm));
            await Assert.ThrowsAsync<StaleTermException>(() => Store.InsertReplicaAsync(job, null));
            await Assert.ThrowsAsync<StaleTermException>(() => Store.EnqueueAsync("q", [new QueueBatch(NewRun("q", queueId: "q", messageKey: "k"), ["h"])], new Dictionary<string, string>()));
        });
        Assert.Equal(TaskState.Staging, (await Store.GetAsync(run.MesosId))!.State);
        Assert.Empty(await Store.ListJobRunsAsync("j", 10));
        Assert.Empty(await Store.PendingHandlesAsync("q"));
        Assert.True(await Store.TryTransitionAsync(Move(run, TaskState.Staging, TaskState.Running)));
    }

    [Fact]
    public async Task ListAndCount_ManyRuns_StayFast()
    {
        var total = VolumeRuns;
        var states = new[] { TaskState.Finished, TaskState.Finished, TaskState.Finished, TaskState.Failed, TaskState.Running };
        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            for (var i = worker; i < total; i += 8)
            {
                var run = NewRun($"vol{i % 50}");
                await Store.InsertAsync(run);
                var to = states[i % states.Length];
                await Store.TryTransitionAsync(Move(run, TaskState.WaitingOnOffers, TaskState.Staging));
                await Store.TryTransitionAsync(Move(run, TaskState.Staging, to));
            }
        })));

        var watch = Stopwatch.StartNew();
        var counts = await Store.CountByStateAsync();
        var countTime = watch.Elapsed;
        Assert.Equal(total / 5, counts[TaskState.Running]);
        watch.Restart();
        var running = await Store.ListAsync(new RunQuery(50, State: TaskState.Running));
        var deep = await Store.ListAsync(new RunQuery(50, running[^1].MesosId, TaskState.Running));
        var family = await Store.ListAsync(new RunQuery(50, FamilyId: "vol7"));
        var listTime = watch.Elapsed;
        Assert.Equal((50, 50, 50), (running.Count, deep.Count, family.Count));
        Assert.All(running.Concat(deep), run => Assert.Equal(TaskState.Running, run.State));
        // Generous bounds for a shared 2-core machine: a full scan with a sort of every row would miss them.
        Assert.True(countTime < TimeSpan.FromSeconds(2), $"count by state took {countTime}");
        Assert.True(listTime < TimeSpan.FromSeconds(1), $"three filtered pages took {listTime}");
    }
}
