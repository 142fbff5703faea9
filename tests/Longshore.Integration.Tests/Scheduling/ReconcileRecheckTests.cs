using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Scheduling;

/// <summary>
/// The scheduler's reconciliations over the real store: again as soon as the engine asks (a launch it could not decide
/// yet), and beside the admission passes, not in their way.
/// </summary>
public sealed class ReconcileRecheckTests() : LocalStoreTests(TestClock.Now(TimeSpan.FromMinutes(1)), "NORMAL")
{
    [Fact]
    public async Task EngineAsksForARecheck_ReconciledAgainAfterThatLong_NotAfterTheRegularInterval()
    {
        // Its first reconciliation leaves something undecided and asks to be asked again in 5 s.
        var reconciles = 0;
        var backend = new InertBackend(() => new ReconcileResult([], 0) { RecheckAfter = Interlocked.Increment(ref reconciles) == 1 ? TimeSpan.FromSeconds(5) : null });
        var scheduler = Local.NewScheduler(new SchedulerOptions { ReconcileInterval = TimeSpan.FromMinutes(10) }, backend);
        using var stop = new CancellationTokenSource();
        var loop = scheduler.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(Volatile.Read(ref reconciles) == 1), TimeSpan.FromSeconds(10));

        // The fake clock a second at a time (the scheduler's idle wait is a second): the second reconciliation comes after
        // the 5 s asked for (two seconds of slack: the loop's turn, and the reconciliation's own task reaching the engine on a
        // busy machine), not after the 10 min interval.
        var advanced = await AdvanceUntilAsync(() => Volatile.Read(ref reconciles) == 2, 30);
        Assert.InRange(advanced, 5, 7);
        // Decided the second time: back to the regular interval.
        Assert.Equal(30, await AdvanceUntilAsync(() => Volatile.Read(ref reconciles) > 2, 30));

        await stop.CancelAsync();
        await loop;
    }

    [Fact]
    public async Task AReconciliationThatTakesLong_DoesNotHoldUpAdmission_AndARunStagedMeanwhileStillHoldsItsSlot()
    {
        // The engine's listing at the first regular reconciliation (the second in all) takes until released.
        var reconciles = 0;
        var listed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new InertBackend(listing: () => Interlocked.Increment(ref reconciles) == 2 ? listed.Task : Task.CompletedTask);
        var scheduler = Local.NewScheduler(new SchedulerOptions { ReconcileInterval = TimeSpan.FromSeconds(5) }, backend);
        using var stop = new CancellationTokenSource();
        var loop = scheduler.RunAsync(stop.Token);
        try
        {
            await Eventually.WaitUntilAsync(() => Task.FromResult(Volatile.Read(ref reconciles) == 1), TimeSpan.FromSeconds(10));
            Assert.InRange(await AdvanceUntilAsync(() => Volatile.Read(ref reconciles) == 2, 30), 5, 7);

            // A task of a family with room for one arrives while the engine is being listed: it is staged and launched now.
            var definition = new TaskDefinition { Id = "slow-reconcile", Cmd = "true", MaxConcurrent = 1 };
            var first = TaskRun.CreateFirst(definition, Guid.NewGuid(), Time.GetUtcNow());
            await Local.Store.InsertAsync(first);
            scheduler.Nudge();
            await Eventually.WaitUntilAsync(async () => (await Local.Store.GetAsync(first.MesosId))!.State == TaskState.Staging, TimeSpan.FromSeconds(10));
            Assert.Equal(2, Volatile.Read(ref reconciles));

            // The reconciliation ends (its recount read the active runs before the first was staged); the family's one slot
            // stays taken, so a second task of it waits.
            listed.SetResult();
            var second = TaskRun.CreateFirst(definition, Guid.NewGuid(), Time.GetUtcNow());
            await Local.Store.InsertAsync(second);
            for (var i = 0; i < 5; i++)
            {
                scheduler.Nudge();
                await Task.Delay(100);
            }

            Assert.Equal(TaskState.WaitingOnOffers, (await Local.Store.GetAsync(second.MesosId))!.State);
        }
        finally
        {
            listed.TrySetResult();
            await stop.CancelAsync();
            await loop;
        }
    }

    private async Task<int> AdvanceUntilAsync(Func<bool> done, int maxSeconds)
    {
        var advanced = 0;
        while (!done() && advanced < maxSeconds)
        {
            Time.Advance(TimeSpan.FromSeconds(1));
            advanced++;
            for (var i = 0; i < 10 && !done(); i++)
                await Task.Delay(20);
        }

        return advanced;
    }
}
