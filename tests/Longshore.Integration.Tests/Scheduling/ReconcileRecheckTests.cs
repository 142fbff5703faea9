using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Scheduling;

/// <summary>The scheduler reconciles again as soon as the engine asks (a launch it could not decide yet), over the real store.</summary>
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
        // the 5 s asked for (a second of slack for the loop's turn), not after the 10 min interval.
        var advanced = await AdvanceUntilAsync(() => Volatile.Read(ref reconciles) == 2, 30);
        Assert.InRange(advanced, 5, 6);
        // Decided the second time: back to the regular interval.
        Assert.Equal(30, await AdvanceUntilAsync(() => Volatile.Read(ref reconciles) > 2, 30));

        await stop.CancelAsync();
        await loop;
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
