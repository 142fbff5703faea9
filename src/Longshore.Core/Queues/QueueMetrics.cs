using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Longshore.Core.Queues;

/// <summary>
/// What the poll loop measures per queue, as .NET instruments exported at <c>/metrics</c>. The backlog (as the source
/// reports it) and the age of the oldest waiting run are gauges of the last values the leading instance's poll loop saw.
/// </summary>
public sealed class QueueMetrics : IDisposable
{
    public const string MeterName = "Longshore.Queues";

    /// <summary>Every instrument here carries one tag, the queue's id.</summary>
    public static readonly string[] Labels = ["queue"];

    private readonly Meter _meter = new(MeterName);
    private readonly ConcurrentDictionary<string, long> _backlog = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _oldestWaiting = new(StringComparer.Ordinal);

    public QueueMetrics()
    {
        Received = _meter.CreateCounter<long>("longshore_queue_messages_received", description: "Messages taken from the queue's source (duplicates included).");
        Duplicates = _meter.CreateCounter<long>("longshore_queue_messages_duplicate", description: "Messages delivered again after their task was recorded: no new task.");
        Created = _meter.CreateCounter<long>("longshore_queue_tasks_created", description: "Tasks made from the queue's messages.");
        Acknowledged = _meter.CreateCounter<long>("longshore_queue_messages_acknowledged", description: "Messages acknowledged to the source (their task finished).");
        Released = _meter.CreateCounter<long>("longshore_queue_messages_released", description: "Messages given back to the source (their task failed for good, or was never recorded).");
        PollErrors = _meter.CreateCounter<long>("longshore_queue_poll_errors", description: "Polls of the source that failed.");
        _meter.CreateObservableGauge("longshore_queue_backlog", () => Observe(_backlog), description: "Messages waiting at the source, as it last said.");
        _meter.CreateObservableGauge("longshore_queue_oldest_waiting_seconds", () => Observe(_oldestWaiting), unit: "s",
            description: "Age of the queue's oldest task still waiting to launch, as last measured (0: none waits).");
    }

    public Meter Meter => _meter;

    public Counter<long> Received { get; }

    public Counter<long> Duplicates { get; }

    public Counter<long> Created { get; }

    public Counter<long> Acknowledged { get; }

    public Counter<long> Released { get; }

    public Counter<long> PollErrors { get; }

    public void SetBacklog(string queueId, long backlog) => _backlog[queueId] = backlog;

    public void SetOldestWaiting(string queueId, TimeSpan age) => _oldestWaiting[queueId] = Math.Max(0, age.TotalSeconds);

    /// <summary>A queue that is deleted or no longer polled here has no gauges.</summary>
    public void Forget(string queueId)
    {
        _backlog.TryRemove(queueId, out _);
        _oldestWaiting.TryRemove(queueId, out _);
    }

    private static IEnumerable<Measurement<T>> Observe<T>(ConcurrentDictionary<string, T> values)
        where T : struct =>
        values.Select(pair => new Measurement<T>(pair.Value, new KeyValuePair<string, object?>("queue", pair.Key)));

    public void Dispose() => _meter.Dispose();
}
