using System.Collections.Concurrent;
using System.Globalization;
using Longshore.Core.Queues;
using StackExchange.Redis;

namespace Longshore.Sources.Redis;

/// <summary>
/// <c>redis</c>: a Redis list as a reliable queue. Messages are moved atomically from the list's head to a processing
/// list of the queue's own (<c>longshore:processing:&lt;queue&gt;</c>), removed from it when their task succeeds, and
/// pushed back to the head of the list when it fails for good. After a crash, processing items that were never
/// recorded are pushed back before the next poll. Producers push with RPUSH. When the list is empty a poll waits up to
/// <c>wait_seconds</c> for an item with a blocking <c>BLMOVE</c> (Redis 6.2 or later) on a connection of the queue's own,
/// so a pushed message is taken at once instead of at the next poll.
/// </summary>
public sealed class RedisSource : IQueueSource, IAcknowledgingSource, IRecoveringSource, IBacklogSource, IAsyncDisposable
{
    private const string TakeScript = """
        local taken = {}
        for i = 1, tonumber(ARGV[1]) do
          local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
          if not item then break end
          taken[#taken + 1] = item
        end
        return taken
        """;

    private const string ReturnScript = """
        local returned = 0
        for i = 1, #ARGV do
          if redis.call('LREM', KEYS[2], 1, ARGV[i]) > 0 then
            redis.call('LPUSH', KEYS[1], ARGV[i])
            returned = returned + 1
          end
        end
        return returned
        """;

    /// <summary>Most items one poll moves: large enough that a deep list is recorded in few transactions, small enough that the script holds Redis only for milliseconds.</summary>
    private const int MaxPerPoll = 5000;

    /// <summary>Longest blocking wait: a poll that waits cannot be interrupted, so this bounds how long a stop takes.</summary>
    public const int MaxWaitSeconds = 10;

    private const string DefaultWaitSeconds = "2";

    private readonly ConcurrentDictionary<string, Lazy<Task<ConnectionMultiplexer>>> _connections = new(StringComparer.Ordinal);

    // Blocking commands hold their connection until they return, so each queue that waits has a connection of its own.
    private readonly ConcurrentDictionary<string, Lazy<Task<ConnectionMultiplexer>>> _blocking = new(StringComparer.Ordinal);

    public QueueType Type { get; } = new("redis", "redis", "Redis list",
    [
        new QueueInput("host", "Host", "127.0.0.1", Required: false),
        new QueueInput("port", "Port", "6379", Required: false, Number: true),
        new QueueInput("db", "Database number", "0", Required: false, Number: true),
        new QueueInput("name", "List key"),
        new QueueInput("password", "Password", Required: false, Secret: true),
        new QueueInput("tls", "Use TLS (true/false)", "false", Required: false),
        new QueueInput("wait_seconds", $"Seconds a poll of an empty list waits for an item (0 to {MaxWaitSeconds}; 0: poll every frequency_seconds)", DefaultWaitSeconds, Required: false, Number: true),
    ]);

    public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings)
    {
        var errors = new List<string>();
        if (!int.TryParse(settings.GetValueOrDefault("port", "6379"), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            errors.Add("queue.redis.port: must be a port number from 1 to 65535");
        if (!int.TryParse(settings.GetValueOrDefault("db", "0"), NumberStyles.None, CultureInfo.InvariantCulture, out var db) || db > 1000)
            errors.Add("queue.redis.db: must be a database number from 0 to 1000");
        if (settings.GetValueOrDefault("tls", "false") is not ("true" or "false" or ""))
            errors.Add("queue.redis.tls: must be true or false");
        if (!int.TryParse(settings.GetValueOrDefault("wait_seconds", DefaultWaitSeconds) is { Length: > 0 } w ? w : DefaultWaitSeconds, NumberStyles.None,
                CultureInfo.InvariantCulture, out var wait) || wait > MaxWaitSeconds)
            errors.Add($"queue.redis.wait_seconds: must be a whole number of seconds from 0 to {MaxWaitSeconds}");
        if (settings.GetValueOrDefault("host") is { Length: > 255 })
            errors.Add("queue.redis.host: must be at most 255 characters");
        return errors;
    }

    public async Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var (database, list, processing) = await OpenAsync(queue);
        var taken = (RedisResult[])(await database.ScriptEvaluateAsync(TakeScript, [list, processing], [Math.Min(max, MaxPerPoll)]))!;
        var messages = taken.Select(item => new QueueMessage((string)item!, (string)item!)).ToList();
        var wait = WaitSeconds(queue);
        if (messages.Count > 0 || wait == 0)
            return new PollResult(messages, new Dictionary<string, string>());

        // Nothing there: wait for the first item, then take whatever else came with it.
        var blocking = await OpenBlockingAsync(queue, wait);
        var first = await blocking.GetDatabase(database.Database).ExecuteAsync("BLMOVE", list, processing, "LEFT", "RIGHT", wait);
        if (!first.IsNull && cancellationToken.IsCancellationRequested)
        {
            // Stopping (this instance no longer leads): the item goes back to the head of the list for whoever polls next.
            await database.ScriptEvaluateAsync(ReturnScript, [list, processing], [(RedisValue)(string)first!]);
            cancellationToken.ThrowIfCancellationRequested();
        }

        if (!first.IsNull)
        {
            messages.Add(new QueueMessage((string)first!, (string)first!));
            if (max > 1)
            {
                var more = (RedisResult[])(await database.ScriptEvaluateAsync(TakeScript, [list, processing], [Math.Min(max - 1, MaxPerPoll)]))!;
                messages.AddRange(more.Select(item => new QueueMessage((string)item!, (string)item!)));
            }
        }

        // The wait paced this poll: the next one may start at once.
        return new PollResult(messages, new Dictionary<string, string>()) { NextPollAt = now };
    }

    private int WaitSeconds(StoredQueue queue) =>
        int.Parse(Type.SettingsOf(queue.Block).GetValueOrDefault("wait_seconds") is { Length: > 0 } w ? w : DefaultWaitSeconds, CultureInfo.InvariantCulture);

    private async Task<ConnectionMultiplexer> OpenBlockingAsync(StoredQueue queue, int waitSeconds)
    {
        var options = Options(Type.SettingsOf(queue.Block));
        // Long enough for the longest wait, so the client never gives up on a command the server is still holding.
        options.AsyncTimeout = options.SyncTimeout = (MaxWaitSeconds + 10) * 1000;
        var lazy = _blocking.GetOrAdd(queue.Id + "|" + options.ToString(includePassword: true),
            _ => new Lazy<Task<ConnectionMultiplexer>>(() => ConnectionMultiplexer.ConnectAsync(options)));
        var connection = await lazy.Value;
        if (!connection.IsConnected)
            throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, $"Redis at {options.EndPoints[0]} does not answer (waiting for {waitSeconds} s)");
        return connection;
    }

    public async Task AckAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default)
    {
        var (database, _, processing) = await OpenAsync(queue);
        // Sent together (one round trip for the page, not one per message); each removes its own item whatever the order.
        // The oldest items are at the head of the processing list, where LREM starts looking.
        await Task.WhenAll(handles.Select(handle => database.ListRemoveAsync(processing, handle, 1)));
    }

    public async Task ReleaseAsync(StoredQueue queue, IReadOnlyList<string> handles, CancellationToken cancellationToken = default)
    {
        var (database, list, processing) = await OpenAsync(queue);
        await database.ScriptEvaluateAsync(ReturnScript, [list, processing], handles.Select(h => (RedisValue)h).ToArray());
    }

    public async Task<int> RecoverAsync(StoredQueue queue, IReadOnlySet<string> recorded, CancellationToken cancellationToken = default)
    {
        var (database, list, processing) = await OpenAsync(queue);
        var orphans = (await database.ListRangeAsync(processing)).Select(v => (string)v!).Where(v => !recorded.Contains(v)).ToList();
        if (orphans.Count == 0)
            return 0;
        return (int)await database.ScriptEvaluateAsync(ReturnScript, [list, processing], orphans.Select(o => (RedisValue)o).ToArray());
    }

    public async Task<long?> BacklogAsync(StoredQueue queue, CancellationToken cancellationToken = default)
    {
        var (database, list, _) = await OpenAsync(queue);
        return await database.ListLengthAsync(list);
    }

    private async Task<(IDatabase Database, RedisKey List, RedisKey Processing)> OpenAsync(StoredQueue queue)
    {
        var settings = Type.SettingsOf(queue.Block);
        var options = Options(settings);
        // One connection per distinct server configuration, shared by every queue on it.
        var key = options.ToString(includePassword: true);
        var lazy = _connections.GetOrAdd(key, _ => new Lazy<Task<ConnectionMultiplexer>>(() => ConnectionMultiplexer.ConnectAsync(options)));
        var connection = await lazy.Value;
        if (!connection.IsConnected)
            throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, $"Redis at {options.EndPoints[0]} does not answer");
        var db = int.Parse(settings.GetValueOrDefault("db") is { Length: > 0 } d ? d : "0", CultureInfo.InvariantCulture);
        var name = settings["name"];
        return (connection.GetDatabase(db), name, $"longshore:processing:{queue.Id}");
    }

    private static ConfigurationOptions Options(IReadOnlyDictionary<string, string> settings) =>
        new()
        {
            EndPoints = { { settings.GetValueOrDefault("host") is { Length: > 0 } host ? host : "127.0.0.1", int.Parse(settings.GetValueOrDefault("port") is { Length: > 0 } p ? p : "6379", CultureInfo.InvariantCulture) } },
            Password = settings.GetValueOrDefault("password") is { Length: > 0 } password ? password : null,
            Ssl = settings.GetValueOrDefault("tls") == "true",
            AbortOnConnectFail = false,
            ConnectTimeout = 5000,
            SyncTimeout = 10000,
        };

    public async ValueTask DisposeAsync()
    {
        foreach (var lazy in _connections.Values.Concat(_blocking.Values).Where(l => l.IsValueCreated))
            await (await lazy.Value).DisposeAsync();
    }
}
