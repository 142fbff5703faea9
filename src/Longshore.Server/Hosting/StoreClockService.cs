using Longshore.Core.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Longshore.Server.Hosting;

/// <summary>
/// Keeps the <see cref="StoreClock"/> measured against the store server while the server runs, so instances whose own
/// clocks drift apart (or are set wrong) keep judging leases and due times alike. Says so in the log when this machine's
/// clock is off by a second or more.
/// </summary>
internal sealed partial class StoreClockService(StoreClock clock, ILogger<StoreClockService> logger) : BackgroundService
{
    /// <summary>How often the offset is measured again: clocks drift by milliseconds per hour, NTP steps are rarer.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    /// <summary>An offset the log mentions: below it, nothing an operator need do.</summary>
    public static readonly TimeSpan Notable = TimeSpan.FromSeconds(1);

    /// <summary>Logs the offset measured at start when it is worth an operator's attention.</summary>
    public static void ReportOffset(ILogger logger, TimeSpan offset)
    {
        if (offset.Duration() >= Notable)
            LogOffset(logger, offset.Duration().TotalSeconds, offset > TimeSpan.Zero ? "behind" : "ahead of");
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, TimeProvider.System);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var before = clock.Offset;
            try
            {
                var after = await clock.SyncAsync(stoppingToken);
                if ((after - before).Duration() >= Notable)
                    LogOffsetChanged(logger, before.TotalSeconds, after.TotalSeconds);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The last offset stays in use; the store's own failures show everywhere else.
                LogSyncFailed(logger, e.Message);
            }
        }
    }

    [LoggerMessage(2101, LogLevel.Warning, "This machine's clock is {Seconds:0.000} s {Direction} the store server's; Longshore keeps time by the store server's clock")]
    private static partial void LogOffset(ILogger logger, double seconds, string direction);

    [LoggerMessage(2102, LogLevel.Warning, "The store server's clock moved against this machine's: offset {Before:0.000} s, now {After:0.000} s")]
    private static partial void LogOffsetChanged(ILogger logger, double before, double after);

    [LoggerMessage(2103, LogLevel.Warning, "Could not read the store server's clock; keeping the last offset: {Message}")]
    private static partial void LogSyncFailed(ILogger logger, string message);
}
