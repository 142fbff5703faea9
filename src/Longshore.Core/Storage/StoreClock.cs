namespace Longshore.Core.Storage;

/// <summary>
/// The clock that governs a store: its server's (PostgreSQL, Redis), or for a local file (SQLite) the machine's, which
/// is the clock of every instance that can open the file.
/// </summary>
public interface IServerClock
{
    Task<DateTimeOffset> GetServerTimeAsync(CancellationToken cancellationToken = default);
}

/// <summary>
/// The one clock every instance on a shared store trusts: this machine's clock moved by its measured offset from the
/// store server's. Lease expiry, retry due times, de-duplication windows and cron watermarks are written by one instance
/// and judged by another; measured against one server they agree however far the instances' own clocks drift apart.
/// Timers and elapsed time still come from the local clock (<see cref="GetTimestamp"/>, <see cref="CreateTimer"/>), so a
/// correction never stretches or shortens a wait.
/// </summary>
public sealed class StoreClock(TimeProvider local, IServerClock server) : TimeProvider
{
    /// <summary>Readings taken per measurement; the one with the shortest round trip is kept (as NTP does).</summary>
    public const int Samples = 5;

    private long _offsetTicks;

    /// <summary>How far the store server's clock is ahead of this machine's (negative when behind), as last measured.</summary>
    public TimeSpan Offset => TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));

    /// <summary>The round trip of the reading <see cref="Offset"/> came from: the offset is exact to within half of it.</summary>
    public TimeSpan Uncertainty { get; private set; }

    public override DateTimeOffset GetUtcNow() => local.GetUtcNow() + Offset;

    public override long GetTimestamp() => local.GetTimestamp();

    public override long TimestampFrequency => local.TimestampFrequency;

    public override TimeZoneInfo LocalTimeZone => local.LocalTimeZone;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        local.CreateTimer(callback, state, dueTime, period);

    /// <summary>Reads the server's clock <see cref="Samples"/> times and keeps the offset of the quickest reading.</summary>
    public async Task<TimeSpan> SyncAsync(CancellationToken cancellationToken = default)
    {
        var best = (Offset: TimeSpan.Zero, RoundTrip: TimeSpan.MaxValue);
        for (var i = 0; i < Samples; i++)
        {
            var sent = local.GetTimestamp();
            var before = local.GetUtcNow();
            var serverTime = await server.GetServerTimeAsync(cancellationToken);
            var roundTrip = local.GetElapsedTime(sent);
            if (roundTrip < best.RoundTrip)
                best = (serverTime - (before + roundTrip / 2), roundTrip);
        }

        Interlocked.Exchange(ref _offsetTicks, best.Offset.Ticks);
        Uncertainty = best.RoundTrip / 2;
        return best.Offset;
    }
}
