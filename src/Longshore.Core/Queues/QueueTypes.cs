namespace Longshore.Core.Queues;

/// <summary>One setting of a queue type, as <c>GET /queuetypes/</c> shows it.</summary>
public sealed record QueueInput(string Name, string Label, string? Default = null, bool Required = true, bool Secret = false);

/// <summary>A queue type: where its settings live in the queue block, and which settings it takes.</summary>
public sealed record QueueType(string Type, string Namespace, string Label, IReadOnlyList<QueueInput> Inputs);

/// <summary>The source plug-in point: one poll iteration; the shared poll loop does the rest.</summary>
public interface IQueueSource
{
    QueueType Type { get; }

    /// <summary>Checks a queue's settings; every error names <c>queue.&lt;namespace&gt;.&lt;setting&gt;</c>.</summary>
    IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings);

    /// <summary>
    /// One iteration: up to <paramref name="max"/> messages. <paramref name="state"/> is the queue's durable source state
    /// (watermarks); the returned state is stored in the same transaction as the tasks made from the messages.
    /// </summary>
    Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default);
}

/// <summary>Capability: messages stay with the source until their task's outcome is known.</summary>
public interface IAcknowledgingSource
{
    /// <summary>The task ended successfully: the messages are done.</summary>
    Task AckAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default);

    /// <summary>The task failed for good: the messages go back to the source (its own redelivery or dead-letter rules apply).</summary>
    Task ReleaseAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default);
}

/// <summary>Capability: messages taken from the source but never recorded (a crash between the two) can be returned.</summary>
public interface IRecoveringSource
{
    /// <summary>Returns to the source every taken message whose handle is not in <paramref name="recorded"/>; returns how many.</summary>
    Task<int> RecoverAsync(StoredQueue queue, IReadOnlySet<string> recorded, CancellationToken cancellationToken = default);
}

/// <summary>
/// Capability: the source hands messages out on a lease that runs out (an SQS visibility timeout). While a message's
/// batch is unsettled the poll loop renews its lease every <see cref="LeaseRenewal"/>, so a task may run longer than one
/// lease without its message being delivered again; after a crash the leases simply run out and the source redelivers.
/// </summary>
public interface ILeasingSource
{
    /// <summary>How often the queue's leases must be renewed; well within one lease, so one late renewal is not fatal.</summary>
    TimeSpan LeaseRenewal(StoredQueue queue);

    /// <summary>Renews the lease of each message still held; handles the source no longer knows are skipped, not errors.</summary>
    Task ExtendAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default);
}

/// <summary>Capability: the source can say how many messages wait.</summary>
public interface IBacklogSource
{
    Task<long?> BacklogAsync(StoredQueue queue, CancellationToken cancellationToken = default);
}

/// <param name="Payload">What the task receives as HIPPO_DATA.</param>
/// <param name="Handle">What the source needs to acknowledge or release it (null when nothing is owed).</param>
public sealed record QueueMessage(string Payload, string? Handle = null)
{
    /// <summary>
    /// The message's identity at the source (e.g. a stream sequence or message id), for sources that may deliver a
    /// message again after Longshore recorded it (at-least-once brokers). The store keeps it for
    /// <see cref="QueueDedup.Window"/>, so such a redelivery joins the task already made instead of making another.
    /// </summary>
    public string? DedupKey { get; init; }
}

public sealed record PollResult(IReadOnlyList<QueueMessage> Messages, IReadOnlyDictionary<string, string> State)
{
    /// <summary>When the source wants to be asked again even if idle (e.g. a cron string's next fire).</summary>
    public DateTimeOffset? NextPollAt { get; init; }
}
