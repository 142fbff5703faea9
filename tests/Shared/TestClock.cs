using System.Globalization;
using Microsoft.Extensions.Time.Testing;

namespace Longshore.Tests;

/// <summary>
/// Where every test clock starts: the real current time, moved by <c>LONGSHORE_TEST_CLOCK_OFFSET</c> when it is set
/// (<c>400d</c>, <c>-400d</c>, <c>90m</c>, <c>-30s</c>, or a <see cref="TimeSpan"/> such as <c>1.02:00:00</c>). Tests
/// never pin a calendar date: a fixed date meets real servers' clocks (Redis TTLs, leases, <c>now()</c>) and breaks
/// on a later day. Running the suites with the offset at +400 and -400 days shows that nothing depends on today.
/// </summary>
public static class TestClock
{
    public const string OffsetVariable = "LONGSHORE_TEST_CLOCK_OFFSET";

    /// <summary>How far test clocks start from the real time.</summary>
    public static TimeSpan Offset { get; } = ParseOffset(Environment.GetEnvironmentVariable(OffsetVariable));

    /// <summary>The real time plus <see cref="Offset"/>.</summary>
    public static DateTimeOffset Now() => TimeProvider.System.GetUtcNow() + Offset;

    /// <summary><see cref="Now()"/> cut down to a whole <paramref name="unit"/> (for tests that need an aligned start, such as cron fires).</summary>
    public static DateTimeOffset Now(TimeSpan unit)
    {
        var now = Now();
        return new DateTimeOffset(now.UtcTicks - now.UtcTicks % unit.Ticks, TimeSpan.Zero);
    }

    /// <summary>A fake clock starting at <see cref="Now()"/>.</summary>
    public static FakeTimeProvider Fake() => new(Now());

    /// <summary>A fake clock starting at <see cref="Now(TimeSpan)"/>.</summary>
    public static FakeTimeProvider Fake(TimeSpan alignedTo) => new(Now(alignedTo));

    public static TimeSpan ParseOffset(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            return TimeSpan.Zero;
        text = text.Trim();
        var unit = text[^1];
        if (char.IsLetter(unit) && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var amount))
        {
            return unit switch
            {
                'd' => TimeSpan.FromDays(amount),
                'h' => TimeSpan.FromHours(amount),
                'm' => TimeSpan.FromMinutes(amount),
                's' => TimeSpan.FromSeconds(amount),
                _ => throw new FormatException($"{OffsetVariable}: unknown unit '{unit}' in '{text}'; use d, h, m or s"),
            };
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span)
            ? span
            : throw new FormatException($"{OffsetVariable}: '{text}' is not an offset such as 400d, -400d, -30s or 1.02:00:00");
    }
}
