using Longshore.Core.Execution;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Tests;

namespace Longshore.Integration.Tests.Storage;

/// <summary>
/// Retention, the same on every store: ended runs go by the age of their last state change and beyond their task id's
/// newest ones, in batches no larger than asked, with their logs; waiting and active runs stay, and so does a run whose
/// queue batch is not settled yet, until it is.
/// </summary>
public abstract partial class StoreComplianceTests
{
    private static readonly TaskState[] EndStates = [TaskState.Finished, TaskState.Failed, TaskState.Killed, TaskState.Lost];

    /// <summary>A run created at <paramref name="created"/> that ended (in one of several end states) at <paramref name="ended"/>.</summary>
    private async Task<TaskRun> EndedRunAsync(string family, DateTimeOffset created, DateTimeOffset ended, int index = 0, string? queueId = null, string? messageKey = null)
    {
        var run = NewRun(family, created, queueId, messageKey) with { State = TaskState.Running };
        if (queueId is null)
            await Store.InsertAsync(run);
        else
            await Store.EnqueueAsync(queueId, [new QueueBatch(run, ["h-" + messageKey])], new Dictionary<string, string>());
        var end = EndStates[index % EndStates.Length];
        Assert.True(await Store.TryTransitionAsync(new RunTransition(run.MesosId, [TaskState.Running], end, ended)
        {
            Logs = new TaskLogs("out of " + run.MesosId, string.Empty, false),
        }));
        return run with { State = end };
    }

    private async Task<HashSet<string>> MesosIdsAsync(string family) =>
        (await Store.ListAsync(new RunQuery(1000, FamilyId: family))).Select(run => run.MesosId).ToHashSet(StringComparer.Ordinal);

    [Fact]
    public async Task PruneEndedBeforeAsync_OldEndedRunsGoInBatches_WithTheirLogs_ActiveWaitingAndRecentStay()
    {
        var now = TestClock.Now();
        var family = "age-" + Guid.NewGuid().ToString("N")[..8];
        var old = new List<TaskRun>();
        for (var i = 0; i < 5; i++)
            old.Add(await EndedRunAsync(family, now.AddHours(-3), now.AddHours(-2), i));
        // Created long ago but ended a minute ago: its age counts from its last state change.
        var longRunner = await EndedRunAsync(family, now.AddHours(-3), now.AddMinutes(-1));
        var running = NewRun(family, now.AddHours(-3)) with { State = TaskState.Running };
        var waiting = NewRun(family, now.AddHours(-3));
        await Store.InsertAsync(running);
        await Store.InsertAsync(waiting);

        var batches = new List<int>();
        while (batches.Count < 10 && await Store.PruneEndedBeforeAsync(now.AddHours(-1), 2) is var pruned and > 0)
            batches.Add(pruned);

        Assert.Equal([2, 2, 1], batches);
        Assert.Equal(new HashSet<string> { longRunner.MesosId, running.MesosId, waiting.MesosId }, await MesosIdsAsync(family));
        foreach (var run in old)
        {
            Assert.Null(await Store.GetAsync(run.MesosId));
            Assert.Null(await Store.GetLogsAsync(run.MesosId));
        }

        Assert.NotNull(await Store.GetLogsAsync(longRunner.MesosId));
        Assert.Equal(1, (await Store.CountByStateAsync()).GetValueOrDefault(TaskState.Running));
    }

    [Fact]
    public async Task PruneEndedBeforeAsync_RunOfAnUnsettledBatch_StaysUntilTheBatchIsSettled()
    {
        var now = TestClock.Now();
        var queue = "rq-" + Guid.NewGuid().ToString("N")[..8];
        var pinned = await EndedRunAsync(queue, now.AddHours(-3), now.AddHours(-2), queueId: queue, messageKey: queue + "-k1");
        var settled = await EndedRunAsync(queue, now.AddHours(-3), now.AddHours(-2), 1, queueId: queue, messageKey: queue + "-k2");
        Assert.True(await Store.SettleBatchAsync(queue + "-k2", acknowledged: true));

        Assert.Equal(1, await Store.PruneEndedBeforeAsync(now.AddHours(-1), 10));
        Assert.Equal(new HashSet<string> { pinned.MesosId }, await MesosIdsAsync(queue));
        // The pinned batch still settles: the poll loop finds it through its run.
        Assert.Contains(await Store.ListEndedBatchesAsync(10), batch => batch.MessageKey == queue + "-k1");

        Assert.True(await Store.SettleBatchAsync(queue + "-k1", acknowledged: false));
        Assert.Equal(1, await Store.PruneEndedBeforeAsync(now.AddHours(-1), 10));
        Assert.Empty(await MesosIdsAsync(queue));
        Assert.Empty(await Store.PendingHandlesAsync(queue));
        Assert.DoesNotContain(await Store.ListEndedBatchesAsync(100), batch => batch.QueueId == queue);
    }

    [Fact]
    public async Task PruneFamilyAsync_KeepsTheNewestEndedRunsOfTheTaskId_AndEveryActiveOne()
    {
        var now = TestClock.Now();
        var busy = "cnt-" + Guid.NewGuid().ToString("N")[..8];
        var quiet = "cnt-" + Guid.NewGuid().ToString("N")[..8];
        var ended = new List<TaskRun>();
        for (var i = 0; i < 6; i++)
            ended.Add(await EndedRunAsync(busy, now.AddMinutes(-60 + i), now.AddMinutes(-30 + i), i));
        var running = NewRun(busy, now.AddMinutes(-90)) with { State = TaskState.Running };
        var waiting = NewRun(busy, now.AddMinutes(-90));
        await Store.InsertAsync(running);
        await Store.InsertAsync(waiting);
        for (var i = 0; i < 3; i++)
            await EndedRunAsync(quiet, now.AddMinutes(-60), now.AddMinutes(-30), i);

        var over = await Store.FamiliesOverAsync(3);
        Assert.Contains(busy, over);
        Assert.DoesNotContain(quiet, over);

        Assert.Equal(2, await Store.PruneFamilyAsync(busy, 3, 2));
        Assert.Equal(1, await Store.PruneFamilyAsync(busy, 3, 2));
        Assert.Equal(0, await Store.PruneFamilyAsync(busy, 3, 2));
        Assert.Equal(0, await Store.PruneFamilyAsync(quiet, 3, 2));

        var kept = ended.Skip(3).Select(run => run.MesosId).Append(running.MesosId).Append(waiting.MesosId).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(kept, await MesosIdsAsync(busy));
        foreach (var run in ended.Take(3))
            Assert.Null(await Store.GetLogsAsync(run.MesosId));
        Assert.Equal(3, (await MesosIdsAsync(quiet)).Count);
    }

    [Fact]
    public async Task Prune_UnderAnOlderTerm_IsRefused_AndDeletesNothing()
    {
        var now = TestClock.Now();
        var family = "fence-" + Guid.NewGuid().ToString("N")[..8];
        var run = await EndedRunAsync(family, now.AddHours(-3), now.AddHours(-2));
        var first = await Store.TryAcquireLeaseAsync("a", TimeSpan.FromSeconds(30), now, takeOver: true);
        await Store.TryAcquireLeaseAsync("b", TimeSpan.FromSeconds(30), now, takeOver: true);

        await Task.Run(async () =>
        {
            Fencing.Enter(first.Term);
            await Assert.ThrowsAsync<StaleTermException>(() => Store.PruneEndedBeforeAsync(now.AddHours(-1), 10));
            await Assert.ThrowsAsync<StaleTermException>(() => Store.PruneFamilyAsync(family, 0, 10));
        });

        Assert.NotNull(await Store.GetAsync(run.MesosId));
    }
}
