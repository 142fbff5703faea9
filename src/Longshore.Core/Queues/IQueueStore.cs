using Longshore.Core.Tasks;

namespace Longshore.Core.Queues;

/// <summary>One task's worth of messages: the run made from them and what the source needs to settle them.</summary>
public sealed record QueueBatch(TaskRun Run, IReadOnlyList<string> Handles);

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

    /// <summary>Inserts the batches' runs, remembers their handles and stores the new source state, all in one transaction.</summary>
    Task EnqueueAsync(string id, IReadOnlyList<QueueBatch> batches, IReadOnlyDictionary<string, string> state, CancellationToken cancellationToken = default);

    /// <summary>Runs of the queue not yet ended, and when the oldest waiting one was created (for lag).</summary>
    Task<(int Active, DateTimeOffset? OldestWaiting)> QueueLoadAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Unsettled batches whose latest run has ended without a retry to come.</summary>
    Task<IReadOnlyList<EndedBatch>> ListEndedBatchesAsync(int limit, CancellationToken cancellationToken = default);

    /// <summary>Handles of the queue's batches not settled yet.</summary>
    Task<IReadOnlySet<string>> PendingHandlesAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Marks a batch acknowledged or released; false if it was settled already (so it is settled once).</summary>
    Task<bool> SettleBatchAsync(string messageKey, bool acknowledged, CancellationToken cancellationToken = default);
}
