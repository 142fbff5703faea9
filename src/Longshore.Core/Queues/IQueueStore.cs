using Longshore.Core.Tasks;

namespace Longshore.Core.Queues;

/// <summary>One task's worth of messages: the run made from them and what the source needs to settle them.</summary>
public sealed record QueueBatch(TaskRun Run, IReadOnlyList<string> Handles)
{
    /// <summary>The de-duplication keys of the batch's messages, each with its handle; recorded with the run.</summary>
    public IReadOnlyList<DedupEntry> DedupKeys { get; init; } = [];
}

/// <summary>A message's de-duplication key and the handle it was delivered with.</summary>
public sealed record DedupEntry(string Key, string? Handle);

/// <summary>A de-duplication key recorded earlier: the batch holding it, the handle it has there, and whether that batch is still unsettled.</summary>
public sealed record SeenMessage(string MessageKey, string? Handle, bool Pending);

/// <summary>How long de-duplication keys are kept.</summary>
public static class QueueDedup
{
    /// <summary>24 hours: a redelivery later than that becomes a new task.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromHours(24);
}

/// <summary>A successful poll of a queue: when it ran and when the queue is due again.</summary>
public readonly record struct PollRecord(DateTimeOffset At, DateTimeOffset NextPollAt);

/// <summary>A batch whose task chain has ended, waiting to be acknowledged (success) or released (failure).</summary>
public sealed record EndedBatch(string MessageKey, string QueueId, IReadOnlyList<string> Handles, bool Succeeded);

/// <summary>Where queues, their source state (watermarks) and their message batches are kept.</summary>
public interface IQueueStore
{
    Task<bool> CreateQueueAsync(StoredQueue queue, CancellationToken cancellationToken = default);

    Task<StoredQueue?> GetQueueAsync(string id, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<StoredQueue>> ListQueuesAsync(CancellationToken cancellationToken = default);

    /// <summary>Replaces template and block; poll status and source state are kept. False if unknown.</summary>
    Task<bool> UpdateQueueAsync(StoredQueue queue, CancellationToken cancellationToken = default);

    /// <summary>Deletes the queue and its source state; its runs stay. False if unknown.</summary>
    Task<bool> DeleteQueueAsync(string id, CancellationToken cancellationToken = default);

    Task RecordPollAsync(string id, DateTimeOffset at, string? error, DateTimeOffset nextPollAt, CancellationToken cancellationToken = default);

    Task<IReadOnlyDictionary<string, string>> GetSourceStateAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Inserts the batches' runs, remembers their handles and de-duplication keys (until <see cref="QueueDedup.Window"/>
    /// after the run's creation) and stores the new source state, all in one transaction; with <paramref name="poll"/>,
    /// records the poll as <see cref="RecordPollAsync"/> does (no error), in the same transaction where the store has them
    /// (one durable commit per poll instead of two), or right after.
    /// </summary>
    Task EnqueueAsync(string id, IReadOnlyList<QueueBatch> batches, IReadOnlyDictionary<string, string> state, PollRecord? poll = null,
        CancellationToken cancellationToken = default);

    /// <summary>Runs of the queue not yet ended, and when the oldest waiting one was created (for lag).</summary>
    Task<(int Active, DateTimeOffset? OldestWaiting)> QueueLoadAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Unsettled batches whose latest run has ended without a retry to come.</summary>
    Task<IReadOnlyList<EndedBatch>> ListEndedBatchesAsync(int limit, CancellationToken cancellationToken = default);

    /// <summary>Handles of the queue's batches not settled yet.</summary>
    Task<IReadOnlySet<string>> PendingHandlesAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Marks a batch acknowledged or released; false if it was settled already (so it is settled once). Releasing also
    /// forgets the batch's de-duplication keys: a released message is meant to run again.
    /// </summary>
    Task<bool> SettleBatchAsync(string messageKey, bool acknowledged, CancellationToken cancellationToken = default);

    /// <summary>
    /// Settles many batches the same way, as <see cref="SettleBatchAsync"/> does each; returns how many were still unsettled.
    /// Stores that can do it in one transaction do (a shared store then commits once, not once per batch).
    /// </summary>
    async Task<int> SettleBatchesAsync(IReadOnlyCollection<string> messageKeys, bool acknowledged, CancellationToken cancellationToken = default) =>
        (await Task.WhenAll(messageKeys.Select(key => SettleBatchAsync(key, acknowledged, cancellationToken)))).Count(settled => settled);

    /// <summary>Which of <paramref name="keys"/> the queue recorded within the window before <paramref name="now"/>.</summary>
    Task<IReadOnlyDictionary<string, SeenMessage>> FindSeenAsync(string id, IReadOnlyCollection<string> keys, DateTimeOffset now, CancellationToken cancellationToken = default);

    /// <summary>
    /// A recorded message came again with a new handle: its unsettled batch settles with <paramref name="newHandle"/>
    /// in place of the old one (brokers honour only the latest delivery's handle).
    /// </summary>
    Task ReplaceHandleAsync(string id, string dedupKey, string newHandle, CancellationToken cancellationToken = default);
}
