using System.Collections.Concurrent;
using System.Threading.Channels;
using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Longshore.Integration.Tests.Scheduling;

/// <summary>
/// A run's start report with its end already waiting behind it (a short task on a busy engine) is applied as one write
/// of the end that keeps what the start said, over the real store; an end with no output keeps no logs.
/// </summary>
public sealed class StartWithEndTests() : LocalStoreTests(TestClock.Now(TimeSpan.FromMinutes(1)), "NORMAL")
{
    private const int Runs = 20;

    [Fact]
    public async Task StartAndEndWaitingTogether_OneWrite_KeepsTheStartsTimeContainerAndAgent_AndAcknowledgesBoth_NoOutputKeepsNoLogs()
    {
        var backend = new HeldReportsBackend();
        using var metrics = new SchedulerMetrics();
        var scheduler = new Scheduler(Local.Store, backend, new RetryPolicy(new RetryOptions(), () => 0.5),
            new SchedulerOptions { IdleInterval = TimeSpan.FromMilliseconds(100) }, Time, Guid.NewGuid, metrics, NullLogger<Scheduler>.Instance);
        var runs = Enumerable.Range(0, Runs).Select(i => TaskRun.CreateFirst(
            new TaskDefinition { Id = "short", Cmd = "true", MaxConcurrent = Runs, Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } },
            Guid.NewGuid(), Time.GetUtcNow())).ToList();
        foreach (var run in runs)
            await Local.Store.InsertAsync(run);

        using var stop = new CancellationTokenSource();
        var loop = scheduler.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await Local.Store.ListAsync(new RunQuery(100, State: TaskState.Staging))).Count == Runs, TimeSpan.FromSeconds(30));

        // Each run's start and end reach the scheduler back to back; the start's acknowledgement records what the store
        // holds once it is called (after the write that applied it).
        // Every other run ends with no output at all, which is kept as no logs.
        var started = Time.GetUtcNow().AddSeconds(1);
        var output = runs.ToDictionary(run => run.MesosId, run => runs.IndexOf(run) % 2 == 0 ? "done\n" : string.Empty);
        var seenAtStartAck = new ConcurrentDictionary<string, TaskState>();
        var endAcks = new ConcurrentBag<string>();
        foreach (var run in runs)
        {
            backend.Report(new StatusUpdate(run.MesosId, TaskState.Running, started)
            {
                ContainerId = "container-" + run.MesosId, Agent = "agent-1",
                Applied = async cancellationToken => seenAtStartAck[run.MesosId] = (await Local.Store.GetAsync(run.MesosId, cancellationToken))!.State,
            });
            backend.Report(new StatusUpdate(run.MesosId, TaskState.Finished, started.AddSeconds(1.5))
            {
                ExitCode = 0, Logs = new TaskLogs(output[run.MesosId], string.Empty, false),
                Applied = _ =>
                {
                    endAcks.Add(run.MesosId);
                    return Task.CompletedTask;
                },
            });
        }

        await Eventually.WaitUntilAsync(() => Task.FromResult(seenAtStartAck.Count == Runs && endAcks.Count == Runs), TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        await loop;

        foreach (var run in runs)
        {
            var stored = (await Local.Store.GetAsync(run.MesosId))!;
            Assert.Equal((TaskState.Finished, 0, started, started.AddSeconds(1.5), "container-" + run.MesosId, "agent-1"),
                (stored.State, stored.ExitCode, stored.StartedAt, stored.FinishedAt, stored.ContainerId, stored.Agent));
            Assert.Equal(output[run.MesosId].Length == 0 ? null : new TaskLogs(output[run.MesosId], string.Empty, false), await Local.Store.GetLogsAsync(run.MesosId));
        }

        // Whether a start and its end are in the scheduler's hands at the same moment depends on its threads; of 20 pairs
        // reported back to back, some are. Those were one write: by the start's acknowledgement the run had already ended.
        Assert.Contains(TaskState.Finished, seenAtStartAck.Values);
    }

    /// <summary>An engine that launches at once and reports only what the test gives it.</summary>
    private sealed class HeldReportsBackend : IExecutionBackend
    {
        private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>();

        public string Name => "held";

        public ChannelReader<StatusUpdate> Updates => _updates.Reader;

        public void Report(StatusUpdate update) => _updates.Writer.TryWrite(update);

        public Task CheckAvailableAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.FromResult(new LaunchResult(run.MesosId, "held"));

        public Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default) => Task.FromResult(false);

        public Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default) =>
            Task.FromResult(new ReconcileResult([], 0));

        public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
