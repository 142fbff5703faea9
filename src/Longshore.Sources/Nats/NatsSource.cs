using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Longshore.Core.Queues;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Longshore.Sources.Nats;

/// <summary>
/// <c>nats</c>: a JetStream stream read through a durable pull consumer with explicit acknowledgement. A message is
/// acknowledged when its task succeeds and negatively acknowledged (redelivered at once) when it fails for good.
/// A message fetched but never acknowledged — Longshore stopped in between — is redelivered by the server after
/// <c>ack_wait_seconds</c>, which must therefore be longer than the longest task.
/// </summary>
public sealed class NatsSource : IQueueSource, IAcknowledgingSource, IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<Task<NatsConnection>>> _connections = new(StringComparer.Ordinal);

    private const string DefaultWaitSeconds = "2";

    public QueueType Type { get; } = new("nats", "nats", "NATS JetStream",
    [
        new QueueInput("url", "Server URL", "nats://127.0.0.1:4222", Required: false),
        new QueueInput("stream", "Stream"),
        new QueueInput("subject", "Subject filter (empty: the whole stream)", Required: false),
        new QueueInput("consumer", "Durable consumer name (default: longshore-<queue id>)", Required: false),
        new QueueInput("ack_wait_seconds", "Seconds before an unacknowledged message is redelivered", "21600", Required: false, Number: true),
        new QueueInput("nak_delay_seconds", "Seconds before a failed message is delivered again", "10", Required: false, Number: true),
        new QueueInput("max_deliver", "Deliveries before a failing message is terminated", "5", Required: false, Number: true),
        new QueueInput("wait_seconds", "Seconds a poll of an empty stream waits for a message (0 to 20; 0: poll every frequency_seconds)", DefaultWaitSeconds, Required: false, Number: true),
        new QueueInput("user", "User", Required: false),
        new QueueInput("password", "Password", Required: false, Secret: true),
        new QueueInput("token", "Token", Required: false, Secret: true),
    ]);

    public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings)
    {
        var errors = new List<string>();
        if (settings.GetValueOrDefault("url") is { Length: > 0 } url && (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("nats" or "tls")))
            errors.Add("queue.nats.url: must be a nats:// or tls:// address");
        if (!int.TryParse(settings.GetValueOrDefault("ack_wait_seconds", "21600"), NumberStyles.None, CultureInfo.InvariantCulture, out var wait) || wait is < 1 or > 604800)
            errors.Add("queue.nats.ack_wait_seconds: must be a whole number of seconds from 1 to 604800");
        if (!int.TryParse(settings.GetValueOrDefault("nak_delay_seconds", "10"), NumberStyles.None, CultureInfo.InvariantCulture, out var delay) || delay > 86400)
            errors.Add("queue.nats.nak_delay_seconds: must be a whole number of seconds from 0 to 86400");
        if (!int.TryParse(settings.GetValueOrDefault("max_deliver", "5"), NumberStyles.None, CultureInfo.InvariantCulture, out var deliver) || deliver is < 1 or > 1000)
            errors.Add("queue.nats.max_deliver: must be a whole number from 1 to 1000");
        if (!int.TryParse(settings.GetValueOrDefault("wait_seconds") is { Length: > 0 } ws ? ws : DefaultWaitSeconds, NumberStyles.None, CultureInfo.InvariantCulture, out var waitSeconds)
            || waitSeconds > 20)
            errors.Add("queue.nats.wait_seconds: must be a whole number of seconds from 0 to 20");
        foreach (var name in (string[])["stream", "consumer"])
        {
            if (settings.GetValueOrDefault(name) is { Length: > 0 } value && value.Any(c => c is '.' or '*' or '>' or ' '))
                errors.Add($"queue.nats.{name}: must not contain '.', '*', '>' or spaces");
        }

        return errors;
    }

    public async Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var settings = Type.SettingsOf(queue.Block);
        var connection = await ConnectAsync(settings);
        var js = new NatsJSContext(connection);
        var config = new ConsumerConfig(settings.GetValueOrDefault("consumer") is { Length: > 0 } name ? name : "longshore-" + queue.Id.Replace('.', '-'))
        {
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            AckWait = TimeSpan.FromSeconds(int.Parse(settings.GetValueOrDefault("ack_wait_seconds") is { Length: > 0 } w ? w : "21600", CultureInfo.InvariantCulture)),
            MaxAckPending = 100_000,
        };
        if (settings.GetValueOrDefault("subject") is { Length: > 0 } subject)
            config.FilterSubject = subject;
        var consumer = await js.CreateOrUpdateConsumerAsync(settings["stream"], config, cancellationToken);
        var messages = new List<QueueMessage>();
        await foreach (var message in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = Math.Clamp(max, 1, 1000) }, cancellationToken: cancellationToken))
            messages.Add(Message(message));
        var wait = int.Parse(settings.GetValueOrDefault("wait_seconds") is { Length: > 0 } ws ? ws : DefaultWaitSeconds, CultureInfo.InvariantCulture);
        if (messages.Count > 0 || wait == 0)
            return new PollResult(messages, new Dictionary<string, string>());

        // Nothing there: one pull request waits for the first message, then whatever else came with it is taken at once.
        if (await consumer.NextAsync<byte[]>(opts: new NatsJSNextOpts { Expires = TimeSpan.FromSeconds(wait) }, cancellationToken: cancellationToken) is { } first)
        {
            messages.Add(Message(first));
            if (max > 1)
            {
                await foreach (var message in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = Math.Clamp(max - 1, 1, 1000) }, cancellationToken: cancellationToken))
                    messages.Add(Message(message));
            }
        }

        // The wait paced this poll: the next one may start at once.
        return new PollResult(messages, new Dictionary<string, string>()) { NextPollAt = now };
    }

    private static QueueMessage Message(INatsJSMsg<byte[]> message) =>
        new(Encoding.UTF8.GetString(message.Data ?? []), message.ReplyTo) { DedupKey = DedupKey(message.ReplyTo) };

    // JetStream acknowledgements are plain messages to each delivery's reply subject, so they work from any later poll.
    public Task AckAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default) =>
        ReplyAsync(queue, handles.Select(h => (h, "+ACK")), cancellationToken);

    /// <summary>Failed for good: delivered again after nak_delay_seconds, or terminated once max_deliver deliveries are spent.</summary>
    public Task ReleaseAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default)
    {
        var settings = Type.SettingsOf(queue.Block);
        var delay = TimeSpan.FromSeconds(int.Parse(settings.GetValueOrDefault("nak_delay_seconds") is { Length: > 0 } d ? d : "10", CultureInfo.InvariantCulture));
        var maxDeliver = int.Parse(settings.GetValueOrDefault("max_deliver") is { Length: > 0 } m ? m : "5", CultureInfo.InvariantCulture);
        var nak = "-NAK {\"delay\":" + (delay.Ticks * 100).ToString(CultureInfo.InvariantCulture) + "}";
        return ReplyAsync(queue, handles.Select(h => (h, Deliveries(h) >= maxDeliver ? "+TERM" : nak)), cancellationToken);
    }

    /// <summary>
    /// How often the message was delivered, from its reply subject: <c>$JS.ACK.&lt;stream&gt;.&lt;consumer&gt;.&lt;delivered&gt;.…</c>
    /// (9 tokens), or with domain and account hash first (12 or more).
    /// </summary>
    public static int Deliveries(string replySubject)
    {
        var tokens = replySubject.Split('.');
        var index = tokens.Length >= 12 ? 6 : 4;
        return tokens.Length > index && int.TryParse(tokens[index], NumberStyles.None, CultureInfo.InvariantCulture, out var delivered) ? delivered : 1;
    }

    /// <summary>The message's identity in its stream (stream name and stream sequence), the same on every delivery.</summary>
    public static string? DedupKey(string? replySubject)
    {
        var tokens = replySubject?.Split('.') ?? [];
        var (stream, sequence) = tokens.Length >= 12 ? (4, 7) : (2, 5);
        return tokens.Length > sequence ? tokens[stream] + ":" + tokens[sequence] : null;
    }

    private async Task ReplyAsync(StoredQueue queue, IEnumerable<(string Subject, string Body)> replies, CancellationToken cancellationToken)
    {
        var connection = await ConnectAsync(Type.SettingsOf(queue.Block));
        foreach (var (subject, body) in replies)
            await connection.PublishAsync(subject, Encoding.ASCII.GetBytes(body), cancellationToken: cancellationToken);
        await connection.PingAsync(cancellationToken);
    }

    private async Task<NatsConnection> ConnectAsync(IReadOnlyDictionary<string, string> settings)
    {
        var options = new NatsOpts
        {
            Url = settings.GetValueOrDefault("url") is { Length: > 0 } url ? url : "nats://127.0.0.1:4222",
            AuthOpts = new NatsAuthOpts
            {
                Username = settings.GetValueOrDefault("user") is { Length: > 0 } user ? user : null,
                Password = settings.GetValueOrDefault("password") is { Length: > 0 } password ? password : null,
                Token = settings.GetValueOrDefault("token") is { Length: > 0 } token ? token : null,
            },
            Name = "longshore",
        };
        var key = string.Join('\n', options.Url, options.AuthOpts.Username, options.AuthOpts.Password, options.AuthOpts.Token);
        var lazy = _connections.GetOrAdd(key, _ => new Lazy<Task<NatsConnection>>(async () =>
        {
            var connection = new NatsConnection(options);
            await connection.ConnectAsync();
            return connection;
        }));
        try
        {
            return await lazy.Value;
        }
        catch
        {
            // A failed first connection is not cached: the next poll tries again.
            _connections.TryRemove(key, out _);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var lazy in _connections.Values.Where(l => l.IsValueCreated && l.Value.IsCompletedSuccessfully))
            await (await lazy.Value).DisposeAsync();
    }
}
