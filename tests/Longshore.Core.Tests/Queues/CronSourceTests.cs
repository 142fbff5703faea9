using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Core.Tasks;
using Longshore.Sources.Cron;

namespace Longshore.Core.Tests.Queues;

public sealed class CronSourceTests
{
    // Noon (UTC) of the test clock's day: the expressions below fire on whole minutes and hours.
    private static readonly DateTimeOffset Created = TestClock.Now(TimeSpan.FromDays(1)).AddHours(12);
    private readonly CronSource _source = new();

    private static StoredQueue Queue(string cron, int maxBacklog = 0, string timezone = "UTC") => new()
    {
        Id = "tick",
        Template = new TaskDefinition { Id = "tick" },
        CreatedAt = Created,
        Block = new QueueBlock
        {
            Type = "cron",
            Settings = new() { ["cron"] = JsonSerializer.SerializeToElement(new { cronstring = cron, maxbacklog = maxBacklog.ToString(), timezone }) },
        },
    };

    /// <summary>A fire time as the payload spells it, as Hippo does: Unix seconds.</summary>
    private static string Fire(DateTimeOffset at) => at.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static Dictionary<string, string> Watermark(DateTimeOffset at) => new() { ["last_fire"] = at.ToUnixTimeMilliseconds().ToString() };

    [Fact]
    public async Task OnTimeFire_BecomesOneMessage_WithTheFireTime_AndTheWatermarkMoves()
    {
        var now = Created.AddMinutes(5).AddSeconds(3);

        var result = await _source.PollAsync(Queue("*/5 * * * *"), Watermark(Created.AddMinutes(4)), 100, now);

        Assert.Equal([Fire(Created.AddMinutes(5))], result.Messages.Select(m => m.Payload));
        Assert.Equal(now.ToUnixTimeMilliseconds().ToString(), result.State["last_fire"]);
        Assert.Equal(Created.AddMinutes(10), result.NextPollAt);
    }

    [Fact]
    public async Task PollingAgainAfterTheWatermark_FiresNothingTwice()
    {
        var first = await _source.PollAsync(Queue("*/10 * * * * *"), Watermark(Created), 100, Created.AddSeconds(10));
        var second = await _source.PollAsync(Queue("*/10 * * * * *"), first.State, 100, Created.AddSeconds(15));

        Assert.Single(first.Messages);
        Assert.Empty(second.Messages);
    }

    [Fact]
    public async Task Downtime_ReplaysOnlyTheMostRecentMaxBacklogMissedFires()
    {
        // Down from 12:00 to 12:10 with a fire every minute: ten fires missed, three replayed.
        var result = await _source.PollAsync(Queue("* * * * *", maxBacklog: 3), Watermark(Created), 100, Created.AddMinutes(10).AddSeconds(30));

        Assert.Equal([Fire(Created.AddMinutes(8)), Fire(Created.AddMinutes(9)), Fire(Created.AddMinutes(10))], result.Messages.Select(m => m.Payload));
    }

    [Fact]
    public async Task Downtime_WithZeroBacklog_SkipsToTheNextFire()
    {
        var result = await _source.PollAsync(Queue("* * * * *"), Watermark(Created), 100, Created.AddMinutes(10).AddSeconds(30));

        Assert.Empty(result.Messages);
        Assert.Equal(Created.AddMinutes(11), result.NextPollAt);
    }

    [Fact]
    public async Task TimeZone_IsHonoured()
    {
        // 09:00 in New York is 13:00 or 14:00 UTC, depending on daylight saving time that day.
        var newYork = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
        var nine = TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(Created.UtcDateTime.Date.AddHours(9), DateTimeKind.Unspecified), newYork);

        var result = await _source.PollAsync(Queue("0 9 * * *", timezone: "America/New_York"), Watermark(Created), 10, nine.AddSeconds(1));

        Assert.Equal([Fire(nine)], result.Messages.Select(m => m.Payload));
    }

    [Fact]
    public async Task NoSettings_TakeHipposDefaults_EveryMinute_OneMissedFireReplayed()
    {
        var queue = Queue("*") with { Block = new QueueBlock { Type = "cron", Settings = new() { ["cron"] = JsonSerializer.SerializeToElement(new { cronstring = "", maxbacklog = (string?)null }) } } };

        var result = await _source.PollAsync(queue, Watermark(Created), 100, Created.AddMinutes(10).AddSeconds(30));

        Assert.Empty(_source.Validate(_source.Type.SettingsOf(queue.Block)));
        Assert.Equal([Fire(Created.AddMinutes(10))], result.Messages.Select(m => m.Payload));
        Assert.Equal(Created.AddMinutes(11), result.NextPollAt);
    }

    [Theory]
    [InlineData("nope", "0", "UTC", "queue.cron.cronstring:")]
    [InlineData("* * *", "0", "UTC", "queue.cron.cronstring:")]
    [InlineData("* * * * *", "-1", "UTC", "queue.cron.maxbacklog:")]
    [InlineData("* * * * *", "0", "Mars/Olympus", "queue.cron.timezone:")]
    public void Validate_NamesTheSetting(string cron, string backlog, string zone, string expected)
    {
        var errors = _source.Validate(new Dictionary<string, string> { ["cronstring"] = cron, ["maxbacklog"] = backlog, ["timezone"] = zone });

        Assert.StartsWith(expected, Assert.Single(errors), StringComparison.Ordinal);
    }
}
