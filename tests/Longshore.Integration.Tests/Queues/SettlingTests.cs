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
        var queue = FakeQueue("acked", "acking");
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

    [Fact]
    public async Task QueueDisabledDuringAPoll_ThePollsMessagesGoBackAtOnce_NoTaskIsMade_AndEnablingPollsAgain()
    {
        var source = new HandingOverSource();
        var queue = FakeQueue("handover", "handover");
        Assert.True(await Local.Store.CreateQueueAsync(queue));
        var scheduler = Local.NewScheduler();
        await scheduler.ReconcileAsync();
        using var poller = new QueuePoller(Local.Store, scheduler, [source], Time, Guid.NewGuid, Microsoft.Extensions.Logging.Abstractions.NullLogger<QueuePoller>.Instance);
        using var stop = new CancellationTokenSource();
        var loop = poller.RunAsync(stop.Token);
        try
        {
            // A long poll is waiting at the source when the queue is disabled.
            await Eventually.WaitUntilAsync(() => Task.FromResult(source.Polls == 1), TimeSpan.FromSeconds(10));
            Assert.True(await Local.Store.UpdateQueueAsync(queue with { Block = queue.Block with { Status = "DISABLED" } }));
            // A queue created after the disable: once its loop polls, the pass that started it has seen the disable too.
            Assert.True(await Local.Store.CreateQueueAsync(FakeQueue("probe", "handover")));
            poller.Nudge();
            await Eventually.WaitUntilAsync(() => Task.FromResult(source.ProbePolled), TimeSpan.FromSeconds(10));

            // Then a message arrives and the source hands it over: it goes back at once (not after a visibility timeout),
            // and makes no task.
            source.HandOver("h1");
            await Eventually.WaitUntilAsync(() => Task.FromResult(source.Released.Contains("h1")), TimeSpan.FromSeconds(10));
            Assert.DoesNotContain(await Local.Store.ListAsync(new RunQuery(10)), r => r.QueueId == queue.Id);
            Assert.Empty(await Local.Store.PendingHandlesAsync(queue.Id));

            // Enabled again, the queue gets a loop of its own again.
            Assert.True(await Local.Store.UpdateQueueAsync(queue));
            poller.Nudge();
            await Eventually.WaitUntilAsync(() => Task.FromResult(source.Polls == 2), TimeSpan.FromSeconds(10));
        }
        finally
        {
            await stop.CancelAsync();
            await loop;
        }
    }

    /// <summary>A queue of a fake source's <paramref name="type"/>, with no settings.</summary>
    private static StoredQueue FakeQueue(string id, string type) => new()
    {
        Id = id,
        Template = new TaskDefinition { Id = id, Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } },
        CreatedAt = Start,
        Block = new QueueBlock { Type = type, Settings = new() { [type] = JsonSerializer.SerializeToElement(new Dictionary<string, string>()) } },
    };

    /// <summary>The handles a fake source was given, in order, from any thread.</summary>
    private sealed class HandleLog
    {
        private readonly Lock _lock = new();
        private readonly List<string> _handles = [];

        public List<string> Snapshot
        {
            get
            {
                lock (_lock)
                    return _handles.ToList();
            }
        }

        public Task AddAsync(IReadOnlyList<string> handles)
        {
            lock (_lock)
                _handles.AddRange(handles);
            return Task.CompletedTask;
        }
    }

    /// <summary>
    /// A source that, like a broker's long poll, hands a message over for good once it has it: a caller that stopped
    /// waiting (cancelled its call) has lost it until its visibility timeout. Only the first poll of "handover" waits.
    /// </summary>
    private sealed class HandingOverSource : IQueueSource, IAcknowledgingSource
    {
        private readonly HandleLog _released = new();
        private readonly TaskCompletionSource<string> _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _polls;
        private volatile bool _probePolled;

        public int Polls => Volatile.Read(ref _polls);

        public bool ProbePolled => _probePolled;

        public List<string> Released => _released.Snapshot;

        public QueueType Type { get; } = new("handover", "handover", "Fake long-polling source", []);

        public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings) => [];

        public void HandOver(string handle) => _next.TrySetResult(handle);

        public async Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
        {
            if (queue.Id == "probe")
                _probePolled = true;
            if (queue.Id == "probe" || Interlocked.Increment(ref _polls) > 1)
                return new PollResult([], new Dictionary<string, string>());
            var handle = await _next.Task.WaitAsync(cancellationToken);
            return new PollResult([new QueueMessage("payload", handle)], new Dictionary<string, string>());
        }

        public Task AckAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task ReleaseAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) => _released.AddAsync(handles);
    }

    private sealed class AckingSource : IQueueSource, IAcknowledgingSource
    {
        private readonly HandleLog _acknowledged = new();

        public List<string> Acknowledged => _acknowledged.Snapshot;

        public QueueType Type { get; } = new("acking", "acking", "Fake acknowledging source", []);

        public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings) => [];

        public Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default) =>
            Task.FromResult(new PollResult([], new Dictionary<string, string>()));

        public Task AckAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) => _acknowledged.AddAsync(handles);

        public Task ReleaseAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
