namespace Longshore.Tests;

/// <summary>The real clock moved by <paramref name="skew"/>: a machine whose clock is set wrong. Timers run in real time.</summary>
public sealed class SkewedTimeProvider(TimeSpan skew) : TimeProvider
{
    public TimeSpan Skew => skew;

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + skew;
}
