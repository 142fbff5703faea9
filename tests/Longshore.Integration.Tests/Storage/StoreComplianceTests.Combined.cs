using Longshore.Core.Execution;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;

namespace Longshore.Integration.Tests.Storage;

/// <summary>
/// Transitions sent at the same moment (the scheduler's lanes do so all the time) are answered each as if it had been
/// written alone, however the store groups them: a store that writes them together must still move each run once, keep
/// each one's logs, retry and batch outcome to itself, and let one it cannot write fail without the others.
/// </summary>
public abstract partial class StoreComplianceTests
{
    /// <summary>Whether an end whose retry carries the id of a stored run is refused (the SQL stores' unique key).</summary>
    protected virtual bool RefusesATakenRetryId => true;

    [Fact]
    public async Task TryTransitionAsync_ManyAtOnce_EachAnsweredAsIfAlone()
    {
        var queue = new StoredQueue { Id = "cq", Template = new TaskDefinition { Id = "cq", Cmd = "echo" }, Block = new QueueBlock { Type = "cron", Name = "cq" }, CreatedAt = T0 };
        Assert.True(await Store.CreateQueueAsync(queue));
        var runs = Enumerable.Range(0, 90).Select(i => NewRun("cq", queueId: "cq", messageKey: $"key-{i}")).ToList();
        await Store.EnqueueAsync("cq", runs.Select((run, i) => new QueueBatch(run, [$"handle-{i}"])).ToList(), new Dictionary<string, string>());

        // Each run staged three times at once and once from a state it is not in: exactly one staging wins per run.
        var staging = runs.SelectMany(run => Enumerable.Range(0, 3).Select(_ => Store.TryTransitionAsync(Move(run, TaskState.WaitingOnOffers, TaskState.Staging))))
            .ToList();
        var wrong = runs.Select(run => Store.TryTransitionAsync(Move(run, TaskState.Running, TaskState.Finished))).ToList();
        Assert.Equal(runs.Count, (await Task.WhenAll(staging)).Count(won => won));
        Assert.All(await Task.WhenAll(wrong), Assert.False);

        // Then all at once: a third finish with their logs, a third fail and are retried, a third run and are killed.
        var retries = new Dictionary<string, TaskRun>(StringComparer.Ordinal);
        var ends = runs.Select((run, i) => (i % 3) switch
        {
            0 => Store.TryTransitionAsync(Move(run, TaskState.Staging, TaskState.Finished) with { ExitCode = 0, Logs = new TaskLogs($"out-{i}", $"err-{i}", i % 2 == 0) }),
            1 => Store.TryTransitionAsync(Move(run, TaskState.Staging, TaskState.Failed) with
            {
                ExitCode = i, Reason = $"exit {i}", Logs = new TaskLogs($"out-{i}", "", false),
                Retry = retries[run.MesosId] = NewRun("cq", queueId: "cq", messageKey: run.MessageKey) with { Attempt = 2, RetryOf = run.MesosId },
            }),
            _ => RunThenKillAsync(run, i),
        }).ToList();
        Assert.All(await Task.WhenAll(ends), Assert.True);

        for (var i = 0; i < runs.Count; i++)
        {
            var stored = (await Store.GetAsync(runs[i].MesosId))!;
            var logs = await Store.GetLogsAsync(runs[i].MesosId);
            switch (i % 3)
            {
                case 0:
                    Assert.Equal((TaskState.Finished, 0, (string?)null), (stored.State, stored.ExitCode, stored.RetriedAs));
                    Assert.Equal(new TaskLogs($"out-{i}", $"err-{i}", i % 2 == 0), logs);
                    break;
                case 1:
                    Assert.Equal((TaskState.Failed, (int?)i, $"exit {i}", retries[runs[i].MesosId].MesosId), (stored.State, stored.ExitCode, stored.Reason, stored.RetriedAs));
                    Assert.Equal(new TaskLogs($"out-{i}", "", false), logs);
                    Assert.Equal((TaskState.WaitingOnOffers, runs[i].MesosId), ((await Store.GetAsync(retries[runs[i].MesosId].MesosId))!.State, (await Store.GetAsync(retries[runs[i].MesosId].MesosId))!.RetryOf));
                    break;
                default:
                    Assert.Equal((TaskState.Killed, (int?)137, $"container-{i}"), (stored.State, stored.ExitCode, stored.ContainerId));
                    Assert.NotNull(stored.StartedAt);
                    Assert.Null(logs);
                    break;
            }

            Assert.NotNull(stored.FinishedAt);
        }

        // A chain that ended settles its batch (finished: acknowledged; killed: released); a retried one is still under way.
        var ended = (await Store.ListEndedBatchesAsync(1000)).ToDictionary(batch => batch.MessageKey, batch => batch.Succeeded);
        Assert.Equal(Enumerable.Range(0, runs.Count).Where(i => i % 3 != 1).Select(i => ($"key-{i}", i % 3 == 0)).OrderBy(pair => pair.Item1),
            ended.Select(pair => (pair.Key, pair.Value)).OrderBy(pair => pair.Key));

        if (!RefusesATakenRetryId)
            return;
        // One end the store cannot write (its retry's id is taken) fails on its own; the ends sent with it are written.
        var more = Enumerable.Range(0, 20).Select(_ => NewRun("cq")).ToList();
        foreach (var run in more)
            await Store.InsertAsync(run);
        var writes = more.Select((run, i) => Store.TryTransitionAsync(Move(run, TaskState.WaitingOnOffers, TaskState.Failed) with
        {
            Retry = i == 7 ? runs[0] : null,
        })).ToList();
        await Assert.ThrowsAnyAsync<Exception>(() => writes[7]);
        Assert.All(await Task.WhenAll(writes.Where((_, i) => i != 7)), Assert.True);
        Assert.Equal(TaskState.WaitingOnOffers, (await Store.GetAsync(more[7].MesosId))!.State);
        foreach (var run in more.Where((_, i) => i != 7))
            Assert.Equal(TaskState.Failed, (await Store.GetAsync(run.MesosId))!.State);
    }

    private async Task<bool> RunThenKillAsync(TaskRun run, int i) =>
        await Store.TryTransitionAsync(Move(run, TaskState.Staging, TaskState.Running) with { ContainerId = $"container-{i}" })
        && await Store.TryTransitionAsync(Move(run, TaskState.Running, TaskState.Killed) with { ExitCode = 137, Reason = "killed on request" });
}
