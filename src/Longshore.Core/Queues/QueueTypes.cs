namespace Longshore.Core.Queues;

/// <summary>
/// One setting of a queue type, as <c>GET /queuetypes/</c> shows it. As in Hippo, an input with a <see cref="Default"/>
/// is optional and takes that default when it is omitted or empty; one without a default is needed unless
/// <see cref="Required"/> is false.
/// </summary>
/// <param name="Number">A whole number (Hippo's <c>number</c> input); it may arrive as a JSON number or as a string from a form.</param>
public sealed record QueueInput(string Name, string Label, string? Default = null, bool Required = true, bool Secret = false, bool Number = false)
{
    /// <summary>Hippo's input kind, what a form shows: <c>password</c> for secrets, <c>number</c> or <c>text</c>.</summary>
    public string Input => Secret ? "password" : Number ? "number" : "text";

    /// <summary>True when the queue cannot be created without it: no default, and not optional.</summary>
    public bool Needed => Required && Default is null;
}

/// <summary>A queue type: where its settings live in the queue block, and which settings it takes.</summary>
public sealed record QueueType(string Type, string Namespace, string Label, IReadOnlyList<QueueInput> Inputs)
{
    /// <summary>
    /// The block's settings of this type, as text, with Hippo's rule for defaults applied: every input left out or empty
    /// that has a default takes it. What the sources read and validate; the stored block keeps what was sent.
    /// </summary>
    public IReadOnlyDictionary<string, string> SettingsOf(QueueBlock block)
    {
        var settings = new Dictionary<string, string>(block.SettingsOf(Namespace), StringComparer.Ordinal);
        foreach (var input in Inputs)
        {
            if (input.Default is { Length: > 0 } value && string.IsNullOrEmpty(settings.GetValueOrDefault(input.Name)))
                settings[input.Name] = value;
        }

        return settings;
    }
}

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
