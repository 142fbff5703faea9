using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Queues;

/// <summary>The settling of ended batches by the poll loop, through the real store, with a fake acknowledging source.</summary>
public sealed class SettlingTests() : LocalStoreTests(Start, "NORMAL")
{
    private static readonly DateTimeOffset Start = TestClock.Now(TimeSpan.FromMinutes(1));

    [Fact]
    public async Task ManyEndedBatches_AreSettledPageAfterPage_WithoutWaitingAnIntervalBetweenPages()
    {
        var source = new AckingSource();
        var queue = new StoredQueue
        {
            Id = "acked",
            Template = new TaskDefinition { Id = "acked", Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } },
            CreatedAt = Start,
            Block = new QueueBlock { Type = "acking", Settings = new() { ["acking"] = JsonSerializer.SerializeToElement(new Dictionary<string, string>()) } },
        };
        Assert.True(await Local.Store.CreateQueueAsync(queue));
        // 450 messages whose tasks have all ended: more than two pages of the settling loop.
        var runs = Enumerable.Range(0, 450).Select(i => TaskRun.CreateFirst(queue.Template, Guid.NewGuid(), Start) with { QueueId = queue.Id, MessageKey = $"m{i}" }).ToList();
        await Local.Store.EnqueueAsync(queue.Id, runs.Select((run, i) => new QueueBatch(run, [$"h{i}"])).ToList(), new Dictionary<string, string>());
        foreach (var run in runs)
            Assert.True(await Local.Store.TryTransitionAsync(new RunTransition(run.MesosId, [TaskState.WaitingOnOffers], TaskState.Finished, Start)));

        var scheduler = Local.NewScheduler();
        await scheduler.ReconcileAsync();
        using var poller = new QueuePoller(Local.Store, scheduler, [source], Time, Guid.NewGuid, Microsoft.Extensions.Logging.Abstractions.NullLogger<QueuePoller>.Instance);
        using var stop = new CancellationTokenSource();
        var loop = poller.RunAsync(stop.Token);

        // The clock stands still: only passes that follow one another at once can settle them all. A page is acknowledged
        // at the source first and marked settled in the store after, so both are waited for (stopping the loop between the
        // two leaves the last page pending, to be acknowledged again after a restart).
        await Eventually.WaitUntilAsync(async () => source.Acknowledged.Count == 450 && (await Local.Store.PendingHandlesAsync(queue.Id)).Count == 0,
            TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        await loop;
        Assert.Equal(Enumerable.Range(0, 450).Select(i => $"h{i}").Order(StringComparer.Ordinal), source.Acknowledged.Order(StringComparer.Ordinal));
    }

    private sealed class AckingSource : IQueueSource, IAcknowledgingSource
    {
        private readonly Lock _lock = new();
        private readonly List<string> _acknowledged = [];

        public List<string> Acknowledged
        {
            get
            {
                lock (_lock)
                    return _acknowledged.ToList();
            }
        }

        public QueueType Type { get; } = new("acking", "acking", "Fake acknowledging source", []);

        public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings) => [];

        public Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default) =>
            Task.FromResult(new PollResult([], new Dictionary<string, string>()));

        public Task AckAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default)
        {
            lock (_lock)
                _acknowledged.AddRange(handles);
            return Task.CompletedTask;
        }

        public Task ReleaseAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
