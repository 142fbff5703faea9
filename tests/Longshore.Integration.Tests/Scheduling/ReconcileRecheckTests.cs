using System.Threading.Channels;
using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Longshore.Integration.Tests.Scheduling;

/// <summary>The scheduler reconciles again as soon as the engine asks (a launch it could not decide yet), over the real store.</summary>
public sealed class ReconcileRecheckTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(TestClock.Now(TimeSpan.FromMinutes(1)));
    private LocalStore _local = null!;

    public async Task InitializeAsync() => _local = await LocalStore.OpenAsync(_time, "NORMAL");

    public Task DisposeAsync()
    {
        _local.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task EngineAsksForARecheck_ReconciledAgainAfterThatLong_NotAfterTheRegularInterval()
    {
        var backend = new UndecidedOnceBackend(TimeSpan.FromSeconds(5));
        var scheduler = new Scheduler(_local.Store, backend, new RetryPolicy(new RetryOptions(), () => 0.5),
            new SchedulerOptions { ReconcileInterval = TimeSpan.FromMinutes(10) }, _time, Guid.NewGuid, new SchedulerMetrics(), NullLogger<Scheduler>.Instance);
        using var stop = new CancellationTokenSource();
        var loop = scheduler.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(backend.Reconciles == 1), TimeSpan.FromSeconds(10));

        // The fake clock a second at a time (the scheduler's idle wait is a second): the second reconciliation comes after
        // the 5 s asked for (a second of slack for the loop's turn), not after the 10 min interval.
        var advanced = await AdvanceUntilAsync(() => backend.Reconciles == 2, 30);
        Assert.InRange(advanced, 5, 6);
        // Decided the second time: back to the regular interval.
        Assert.Equal(30, await AdvanceUntilAsync(() => backend.Reconciles > 2, 30));

        await stop.CancelAsync();
        await loop;
    }

    private async Task<int> AdvanceUntilAsync(Func<bool> done, int maxSeconds)
    {
        var advanced = 0;
        while (!done() && advanced < maxSeconds)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            advanced++;
            for (var i = 0; i < 10 && !done(); i++)
                await Task.Delay(20);
        }

        return advanced;
    }

    /// <summary>Reports nothing; its first reconciliation leaves something undecided and asks to be asked again.</summary>
    private sealed class UndecidedOnceBackend(TimeSpan recheck) : IExecutionBackend
    {
        private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>();
        private int _reconciles;

        public int Reconciles => Volatile.Read(ref _reconciles);

        public string Name => "undecided";

        public ChannelReader<StatusUpdate> Updates => _updates.Reader;

        public Task CheckAvailableAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.FromResult(new LaunchResult(run.MesosId, "undecided"));

        public Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default) => Task.FromResult(false);

        public Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default) =>
            Task.FromResult(new ReconcileResult([], 0) { RecheckAfter = Interlocked.Increment(ref _reconciles) == 1 ? recheck : null });

        public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
