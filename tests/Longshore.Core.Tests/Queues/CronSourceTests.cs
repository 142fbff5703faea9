using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Core.Tasks;
using Longshore.Sources.Cron;

namespace Longshore.Core.Tests.Queues;

public sealed class CronSourceTests
{
    private static readonly DateTimeOffset Created = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
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

    private static Dictionary<string, string> Watermark(DateTimeOffset at) => new() { ["last_fire"] = at.ToUnixTimeMilliseconds().ToString() };

    /// <summary>The payloads Hippo gives for these fire times: Unix seconds.</summary>
    private static string[] Fires(params string[] times) =>
        times.Select(t => DateTimeOffset.Parse(t, System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    [Fact]
    public async Task OnTimeFire_BecomesOneMessage_WithTheFireTime_AndTheWatermarkMoves()
    {
        var now = Created.AddMinutes(5).AddSeconds(3);

        var result = await _source.PollAsync(Queue("*/5 * * * *"), Watermark(Created.AddMinutes(4)), 100, now);

        Assert.Equal(Fires("2026-11-23T12:05:00Z"), result.Messages.Select(m => m.Payload));
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

        Assert.Equal(Fires("2026-11-23T12:08:00Z", "2026-11-23T12:09:00Z", "2026-11-23T12:10:00Z"), result.Messages.Select(m => m.Payload));
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
        // 09:00 in New York on 23 November is 14:00 UTC.
        var result = await _source.PollAsync(Queue("0 9 * * *", timezone: "America/New_York"), Watermark(Created), 10, Created.AddHours(2).AddSeconds(1));

        Assert.Equal(Fires("2026-11-23T14:00:00Z"), result.Messages.Select(m => m.Payload));
    }

    [Fact]
    public async Task NoSettings_TakeHipposDefaults_EveryMinute_OneMissedFireReplayed()
    {
        var queue = Queue("*") with { Block = new QueueBlock { Type = "cron", Settings = new() { ["cron"] = JsonSerializer.SerializeToElement(new { cronstring = "", maxbacklog = (string?)null }) } } };

        var result = await _source.PollAsync(queue, Watermark(Created), 100, Created.AddMinutes(10).AddSeconds(30));

        Assert.Empty(_source.Validate(_source.Type.SettingsOf(queue.Block)));
        Assert.Equal(Fires("2026-11-23T12:10:00Z"), result.Messages.Select(m => m.Payload));
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
