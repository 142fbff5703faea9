using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;
using Longshore.Core.Tracing;
using Longshore.Integration.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace Longshore.Integration.Tests.Queues;

/// <summary>
/// Traces through the real poll loop, scheduler and SQLite store, collected by OpenTelemetry's in-memory exporter: one
/// message's whole chain (receipt, wait, launch, run, settle) is one trace, with the run id on every span.
/// </summary>
public sealed class QueueTelemetryTests : IAsyncLifetime
{
    private LocalStore _local = null!;

    public async Task InitializeAsync() => _local = await LocalStore.OpenAsync(TimeProvider.System);

    public Task DisposeAsync()
    {
        _local.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task OneMessage_IsOneTrace_FromReceiptToSettle_WithTheRunIdOnEverySpan()
    {
        var spans = new List<Activity>();
        using (var tracing = Sdk.CreateTracerProviderBuilder().AddSource(RunTracing.SourceName).AddInMemoryExporter(spans).Build())
        {
            var source = new ListSource(["payload-1"]);
            using var metrics = new SchedulerMetrics();
            var scheduler = new Scheduler(_local.Store, new FinishingBackend(TimeProvider.System), new RetryPolicy(new RetryOptions(), () => 0.5),
                new SchedulerOptions { IdleInterval = TimeSpan.FromMilliseconds(100) }, TimeProvider.System, Guid.NewGuid, metrics, NullLogger<Scheduler>.Instance);
            using var poller = new QueuePoller(_local.Store, scheduler, [source], TimeProvider.System, Guid.NewGuid, NullLogger<QueuePoller>.Instance)
            {
                Interval = TimeSpan.FromMilliseconds(200),
            };
            Assert.True(await _local.Store.CreateQueueAsync(ListSource.Queue("traced")));

            using var stop = new CancellationTokenSource();
            var loops = Task.WhenAll(scheduler.RunAsync(stop.Token), poller.RunAsync(stop.Token));
            await Eventually.WaitUntilAsync(() => Task.FromResult(source.Acknowledged.Count == 1), TimeSpan.FromSeconds(30));
            // The settle span is written once the store marks the batch settled, just after the source's acknowledgement.
            await Eventually.WaitUntilAsync(() => Task.FromResult(Snapshot(spans).Any(span => span.DisplayName == "longshore.queue.settle"
                && (string?)span.GetTagItem("longshore.queue") == "traced")), TimeSpan.FromSeconds(10));
            await stop.CancelAsync();
            await loops;
            tracing.ForceFlush();
        }

        var run = Assert.Single(await _local.Store.ListAsync(new Longshore.Core.Storage.RunQuery(10, FamilyId: "traced")));
        // The source is process-wide, so spans of other tests running at the same time are exported too: keep this
        // message's, found by the traces that its run's spans are in (a span of it in another trace or without the run
        // id would then be missing from the names, or fail the checks below).
        var traces = spans.Where(span => (string?)span.GetTagItem(RunTracing.RunIdTag) == run.MesosId).Select(span => span.TraceId).ToHashSet();
        spans = spans.Where(span => traces.Contains(span.TraceId)).ToList();
        Assert.Equal(["longshore.queue.receive", "longshore.queue.settle", "longshore.task.launch", "longshore.task.run", "longshore.task.wait"], Names(spans).Order());
        // The steps follow each other: admitted after it was recorded, launched after admission, ended after it ran, settled last.
        var span = spans.ToDictionary(s => s.DisplayName);
        Assert.True(span["longshore.task.wait"].StartTimeUtc <= span["longshore.queue.receive"].StartTimeUtc + span["longshore.queue.receive"].Duration);
        Assert.True(span["longshore.task.wait"].StartTimeUtc + span["longshore.task.wait"].Duration <= span["longshore.task.launch"].StartTimeUtc + TimeSpan.FromMilliseconds(1));
        Assert.True(span["longshore.task.launch"].StartTimeUtc + span["longshore.task.launch"].Duration <= span["longshore.task.run"].StartTimeUtc + span["longshore.task.run"].Duration);
        Assert.True(span["longshore.task.run"].StartTimeUtc + span["longshore.task.run"].Duration <= span["longshore.queue.settle"].StartTimeUtc + span["longshore.queue.settle"].Duration);
        Assert.Single(spans.Select(span => span.TraceId).Distinct());
        Assert.Single(spans.Select(span => span.ParentSpanId).Distinct());
        Assert.All(spans, span => Assert.Equal(run.MesosId, span.GetTagItem(RunTracing.RunIdTag)));
        var ran = spans.Single(span => span.DisplayName == "longshore.task.run");
        Assert.Equal(("TASK_FINISHED", ActivityStatusCode.Unset), (ran.GetTagItem("longshore.state"), ran.Status));
        Assert.Equal("acknowledged", spans.Single(span => span.DisplayName == "longshore.queue.settle").GetTagItem("longshore.outcome"));
    }

    private static List<string> Names(List<Activity> spans) => Snapshot(spans).Select(span => span.DisplayName).ToList();

    private static List<Activity> Snapshot(List<Activity> spans)
    {
        lock (spans)
            return [.. spans];
    }

    /// <summary>A source holding a fixed list of messages, each delivered once, with the acknowledgements it got.</summary>
    private sealed class ListSource(IEnumerable<string> payloads) : IQueueSource, IAcknowledgingSource
    {
        private readonly ConcurrentQueue<string> _waiting = new(payloads);

        public ConcurrentBag<string> Acknowledged { get; } = [];

        public QueueType Type { get; } = new("list", "list", "Fixed list", []);

        public static StoredQueue Queue(string id) => new()
        {
            Id = id,
            Template = new TaskDefinition { Id = id, Cmd = "true", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } },
            CreatedAt = TimeProvider.System.GetUtcNow(),
            Block = new QueueBlock { Type = "list", Settings = new() { ["list"] = JsonSerializer.SerializeToElement(new Dictionary<string, string>()) } },
        };

        public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings) => [];

        public Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
        {
            var messages = new List<QueueMessage>();
            while (messages.Count < max && _waiting.TryDequeue(out var payload))
                messages.Add(new QueueMessage(payload, "handle-" + payload));
            return Task.FromResult(new PollResult(messages, new Dictionary<string, string>()));
        }

        public Task AckAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default)
        {
            foreach (var handle in handles)
                Acknowledged.Add(handle);
            return Task.CompletedTask;
        }

        public Task ReleaseAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
