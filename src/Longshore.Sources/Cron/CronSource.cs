using System.Globalization;
using Cronos;
using Longshore.Core.Queues;

namespace Longshore.Sources.Cron;

/// <summary>
/// <c>cron</c>: a cron string fires tasks. Each fire happens at most once, across restarts too: the last fire handled is
/// stored with the tasks it made. Fires missed while Longshore was down are replayed, the most recent
/// <c>maxbacklog</c> of them (default 1, as Hippo; 0: none, wait for the next). The payload is the fire time in Unix
/// seconds, as Hippo gives it.
/// </summary>
public sealed class CronSource : IQueueSource
{
    private const string LastFire = "last_fire";

    /// <summary>A fire seen later than this after its time counts as missed.</summary>
    public static readonly TimeSpan OnTime = TimeSpan.FromSeconds(10);

    /// <summary>Missed fires are looked for at most this far back.</summary>
    public static readonly TimeSpan Lookback = TimeSpan.FromDays(7);

    public QueueType Type { get; } = new("cron", "cron", "Cron schedule",
    [
        new QueueInput("cronstring", "Cron string (5 fields, or 6 with seconds first)", "* * * * *", Required: false),
        new QueueInput("timezone", "Time zone (IANA name)", "UTC", Required: false),
        new QueueInput("maxbacklog", "Missed fires to replay after downtime", "1", Required: false, Number: true),
    ]);

    public IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> settings)
    {
        var errors = new List<string>();
        if (settings.GetValueOrDefault("cronstring") is { Length: > 0 } expression && Parse(expression) is null)
            errors.Add($"queue.cron.cronstring: '{expression}' is not a cron string of 5 fields (minute hour day month weekday) or 6 (seconds first)");
        if (Zone(settings) is null)
            errors.Add($"queue.cron.timezone: '{settings.GetValueOrDefault("timezone")}' is not a known IANA time zone such as UTC or Europe/Paris");
        if (!int.TryParse(settings.GetValueOrDefault("maxbacklog", "0"), NumberStyles.None, CultureInfo.InvariantCulture, out var backlog) || backlog > 1000)
            errors.Add("queue.cron.maxbacklog: must be a whole number from 0 to 1000");
        return errors;
    }

    public Task<PollResult> PollAsync(StoredQueue queue, IReadOnlyDictionary<string, string> state, int max, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var settings = Type.SettingsOf(queue.Block);
        var expression = Parse(settings["cronstring"])!;
        var zone = Zone(settings)!;
        var maxBacklog = int.Parse(settings["maxbacklog"], CultureInfo.InvariantCulture);
        var since = state.TryGetValue(LastFire, out var last) ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(last, CultureInfo.InvariantCulture)) : queue.CreatedAt;
        if (since < now - Lookback)
            since = now - Lookback;

        var onTime = new List<DateTimeOffset>();
        var missed = new Queue<DateTimeOffset>();
        foreach (var fire in expression.GetOccurrences(since.UtcDateTime, now.UtcDateTime, zone, fromInclusive: false, toInclusive: true))
        {
            if (now - fire <= OnTime)
            {
                onTime.Add(fire);
            }
            else if (maxBacklog > 0)
            {
                missed.Enqueue(fire);
                if (missed.Count > maxBacklog)
                    missed.Dequeue();
            }
        }

        var fires = missed.Concat(onTime).TakeLast(Math.Max(0, max)).ToList();
        var messages = fires.Select(fire => new QueueMessage(fire.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture))).ToList();
        var next = expression.GetNextOccurrence(now.UtcDateTime, zone, inclusive: false);
        var newState = new Dictionary<string, string>(StringComparer.Ordinal) { [LastFire] = now.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture) };
        return Task.FromResult(new PollResult(messages, newState) { NextPollAt = next is { } n ? new DateTimeOffset(n, TimeSpan.Zero) : now + TimeSpan.FromHours(1) });
    }

    private static CronExpression? Parse(string expression)
    {
        var fields = expression.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        if (fields is not (5 or 6))
            return null;
        return CronExpression.TryParse(expression, fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard, out var parsed) ? parsed : null;
    }

    private static TimeZoneInfo? Zone(IReadOnlyDictionary<string, string> settings)
    {
        var name = settings.GetValueOrDefault("timezone") is { Length: > 0 } zone ? zone : "UTC";
        return TimeZoneInfo.TryFindSystemTimeZoneById(name, out var found) ? found : null;
    }
}
