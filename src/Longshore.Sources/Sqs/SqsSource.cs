using System.Collections.Concurrent;
using System.Globalization;
using Amazon.Runtime;
using Amazon.SQS;
using Amazon.SQS.Model;
using Longshore.Core.Queues;
using Longshore.Sources.Aws;

namespace Longshore.Sources.Sqs;

/// <summary>
/// <c>sqs</c>: an Amazon SQS queue read with long polling. Each message's body is the payload and its receipt handle
/// the handle. A received message stays invisible to other consumers while its task runs: the poll loop renews its
/// visibility timeout every third of <c>visibility_seconds</c>. It is deleted when the task succeeds and made visible
/// at once when it fails for good, so the queue's own redrive policy (maxReceiveCount, dead-letter queue) applies.
/// A message received but never recorded (Longshore stopped in between) becomes visible again when its visibility
/// timeout runs out.
/// </summary>
public sealed class SqsSource : IQueueSource, IAcknowledgingSource, ILeasingSource, IBacklogSource, IDisposable
{
    private const int DefaultWaitSeconds = 5;
    private const int DefaultVisibilitySeconds = 60;

    // One poll takes at most this many messages, so one busy queue does not hold the shared loop for long.
    private const int MaxPerPoll = 500;

    private readonly AwsConnection<AmazonSQSClient, AmazonSQSConfig> _connection =
        new((credentials, config) => credentials is null ? new AmazonSQSClient(config) : new AmazonSQSClient(credentials, config));

    private readonly ConcurrentDictionary<string, string> _queueUrls = new(StringComparer.Ordinal);

    public QueueType Type { get; } = new("sqs", "sqs", "AWS SQS queue",
    [
        .. AwsConnection<AmazonSQSClient, AmazonSQSConfig>.Inputs,
        new QueueInput("queuename", "Queue name or queue URL"),
        new QueueInput("wait_seconds", "Long-polling wait per receive, 0 to 20 seconds", "5", Required: false, Number: true),
        new QueueInput("visibility_seconds", "Visibility timeout of a received message, renewed while its task runs", "60", Required: false, Number: true),
    ]);

    public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings)
    {
        var errors = new List<string>();
        AwsConnection<AmazonSQSClient, AmazonSQSConfig>.Validate("sqs", settings, errors);
        var name = settings.GetValueOrDefault("queuename") ?? string.Empty;
        if (name.StartsWith("http://", StringComparison.Ordinal) || name.StartsWith("https://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(name, UriKind.Absolute, out var url) || url.AbsolutePath.Trim('/').Length == 0)
                errors.Add("queue.sqs.queuename: a queue URL must be absolute and end in the queue's path");
        }
        else if (name.Length is 0 or > 80 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            errors.Add("queue.sqs.queuename: must be a queue name (1 to 80 letters, digits, '-', '_', '.fifo') or a queue URL");
        }

        if (!int.TryParse(OrDefault(settings, "wait_seconds", DefaultWaitSeconds), NumberStyles.None, CultureInfo.InvariantCulture, out var wait) || wait > 20)
            errors.Add("queue.sqs.wait_seconds: must be a whole number of seconds from 0 to 20");
        if (!int.TryParse(OrDefault(settings, "visibility_seconds", DefaultVisibilitySeconds), NumberStyles.None, CultureInfo.InvariantCulture, out var visibility)
            || visibility is < 2 or > 43200)
            errors.Add("queue.sqs.visibility_seconds: must be a whole number of seconds from 2 to 43200");
        return errors;
    }

    public async Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var (client, url, settings) = await OpenAsync(queue, cancellationToken);
        var wait = Setting(settings, "wait_seconds", DefaultWaitSeconds);
        var visibility = Setting(settings, "visibility_seconds", DefaultVisibilitySeconds);
        var messages = new List<QueueMessage>();
        var limit = Math.Min(max, MaxPerPoll);
        while (messages.Count < limit)
        {
            ReceiveMessageResponse received;
            try
            {
                // Only the first receive waits: once messages flow, the rest of what is there is taken without waiting.
                received = await client.ReceiveMessageAsync(new ReceiveMessageRequest
                {
                    QueueUrl = url,
                    MaxNumberOfMessages = Math.Min(10, limit - messages.Count),
                    WaitTimeSeconds = messages.Count == 0 ? wait : 0,
                    VisibilityTimeout = visibility,
                }, cancellationToken);
            }
            catch (AmazonServiceException) when (messages.Count > 0)
            {
                // Record what was received; the error shows again at the next poll if it lasts.
                break;
            }

            if (received.Messages is not { Count: > 0 })
                break;
            // The message id stays the same across deliveries, unlike the receipt handle.
            messages.AddRange(received.Messages.Select(m => new QueueMessage(m.Body ?? string.Empty, m.ReceiptHandle) { DedupKey = m.MessageId }));
        }

        // A long poll paces itself: the next one may start at once, and a message sent meanwhile is taken as it arrives.
        return new PollResult(messages, new Dictionary<string, string>()) { NextPollAt = wait > 0 ? now : null };
    }

    public async Task AckAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default)
    {
        var (client, url, _) = await OpenAsync(queue, cancellationToken);
        foreach (var chunk in handles.Chunk(10))
        {
            var response = await client.DeleteMessageBatchAsync(new DeleteMessageBatchRequest
            {
                QueueUrl = url,
                Entries = chunk.Select((h, i) => new DeleteMessageBatchRequestEntry(i.ToString(CultureInfo.InvariantCulture), h)).ToList(),
            }, cancellationToken);
            ThrowOnServerFaults(response.Failed);
        }
    }

    /// <summary>Visible again at once: received again by the next poll, or moved by the queue's redrive policy.</summary>
    public Task ReleaseAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) =>
        ChangeVisibilityAsync(queue, handles, _ => 0, cancellationToken);

    public TimeSpan LeaseRenewal(StoredQueue queue) =>
        TimeSpan.FromSeconds(Setting(Type.SettingsOf(queue.Block), "visibility_seconds", DefaultVisibilitySeconds) / 3.0);

    public Task ExtendAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) =>
        ChangeVisibilityAsync(queue, handles, settings => Setting(settings, "visibility_seconds", DefaultVisibilitySeconds), cancellationToken);

    public async Task<long?> BacklogAsync(StoredQueue queue, CancellationToken cancellationToken = default)
    {
        var (client, url, _) = await OpenAsync(queue, cancellationToken);
        var attributes = await client.GetQueueAttributesAsync(new GetQueueAttributesRequest { QueueUrl = url, AttributeNames = ["ApproximateNumberOfMessages"] }, cancellationToken);
        return attributes.ApproximateNumberOfMessages;
    }

    private async Task ChangeVisibilityAsync(StoredQueue queue, IReadOnlyList<string> handles, Func<IReadOnlyDictionary<string, string>, int> seconds, CancellationToken cancellationToken)
    {
        var (client, url, settings) = await OpenAsync(queue, cancellationToken);
        var timeout = seconds(settings);
        foreach (var chunk in handles.Chunk(10))
        {
            var response = await client.ChangeMessageVisibilityBatchAsync(new ChangeMessageVisibilityBatchRequest
            {
                QueueUrl = url,
                Entries = chunk.Select((h, i) => new ChangeMessageVisibilityBatchRequestEntry(i.ToString(CultureInfo.InvariantCulture), h) { VisibilityTimeout = timeout }).ToList(),
            }, cancellationToken);
            ThrowOnServerFaults(response.Failed);
        }
    }

    /// <summary>
    /// A sender fault (the receipt handle expired or the message is gone) cannot succeed on a retry and is let go: the
    /// message comes back through the queue's visibility timeout, where the de-duplication key catches a repeat. A
    /// server fault is thrown, so the poll loop tries again.
    /// </summary>
    private static void ThrowOnServerFaults(List<BatchResultErrorEntry>? failed)
    {
        if (failed?.FirstOrDefault(f => f.SenderFault is not true) is { } fault)
            throw new AmazonSQSException($"SQS batch entry failed: {fault.Code}: {fault.Message}", ErrorType.Receiver, fault.Code, null, System.Net.HttpStatusCode.InternalServerError);
    }

    private async Task<(AmazonSQSClient Client, string Url, IReadOnlyDictionary<string, string> Settings)> OpenAsync(StoredQueue queue, CancellationToken cancellationToken)
    {
        var settings = Type.SettingsOf(queue.Block);
        var client = _connection.ClientFor(settings);
        var name = settings["queuename"];
        if (name.StartsWith("http://", StringComparison.Ordinal) || name.StartsWith("https://", StringComparison.Ordinal))
            return (client, name, settings);
        var cacheKey = string.Join('\n', settings.GetValueOrDefault("endpoint"), AwsConnection<AmazonSQSClient, AmazonSQSConfig>.Region(settings), settings.GetValueOrDefault("awskey"), name);
        if (!_queueUrls.TryGetValue(cacheKey, out var url))
        {
            url = (await client.GetQueueUrlAsync(new GetQueueUrlRequest { QueueName = name }, cancellationToken)).QueueUrl;
            _queueUrls[cacheKey] = url;
        }

        return (client, url, settings);
    }

    private static int Setting(IReadOnlyDictionary<string, string> settings, string name, int fallback) =>
        int.Parse(OrDefault(settings, name, fallback), CultureInfo.InvariantCulture);

    // An empty setting (a form left blank) means the default, as if it were absent.
    private static string OrDefault(IReadOnlyDictionary<string, string> settings, string name, int fallback) =>
        settings.GetValueOrDefault(name) is { Length: > 0 } value ? value : fallback.ToString(CultureInfo.InvariantCulture);

    public void Dispose() => _connection.Dispose();
}
