using Longshore.Core.Scheduling;

namespace Longshore.Core.Tests.Scheduling;

public sealed class SchedulerOptionsTests
{
    private static SchedulerOptions With(string setting) => setting switch
    {
        "capacity-zero" => new() { Capacity = 0 },
        "capacity-huge" => new() { Capacity = 100_001 },
        "kill-grace-negative" => new() { KillGrace = TimeSpan.FromSeconds(-1) },
        "kill-grace-long" => new() { KillGrace = TimeSpan.FromSeconds(3601) },
        "reconcile-fast" => new() { ReconcileInterval = TimeSpan.FromMilliseconds(500) },
        "idle-zero" => new() { IdleInterval = TimeSpan.Zero },
        "idle-negative" => new() { IdleInterval = TimeSpan.FromSeconds(-1) },
        "due-batch-zero" => new() { DueBatch = 0 },
        _ => throw new ArgumentOutOfRangeException(nameof(setting), setting, "no such case"),
    };

    [Fact]
    public void Validate_Defaults_HasNoErrors()
    {
        var options = new SchedulerOptions();

        Assert.Empty(options.Validate());
        Assert.Equal(32, options.Capacity);
        Assert.Equal(TimeSpan.FromSeconds(10), options.KillGrace);
        Assert.Equal(512, options.DueBatch);
    }

    [Fact]
    public void Validate_EverySettingOnTheEdgeOfItsRange_HasNoErrors()
    {
        Assert.Empty(new SchedulerOptions { Capacity = 1, KillGrace = TimeSpan.Zero, ReconcileInterval = TimeSpan.FromSeconds(1), IdleInterval = TimeSpan.FromTicks(1), DueBatch = 1 }.Validate());
        Assert.Empty(new SchedulerOptions { Capacity = 100_000, KillGrace = TimeSpan.FromHours(1) }.Validate());
    }

    [Theory]
    [InlineData("capacity-zero", "capacity: must be between 1 and 100000, got 0")]
    [InlineData("capacity-huge", "capacity: must be between 1 and 100000, got 100001")]
    [InlineData("kill-grace-negative", "kill-grace: must be between 0 and 3600 seconds, got -1")]
    [InlineData("kill-grace-long", "kill-grace: must be between 0 and 3600 seconds, got 3601")]
    [InlineData("reconcile-fast", "reconcile-interval: must be at least 1 second, got 0.5")]
    [InlineData("idle-zero", "idle-interval: must be positive")]
    [InlineData("idle-negative", "idle-interval: must be positive")]
    [InlineData("due-batch-zero", "due-batch: must be at least 1")]
    public void Validate_OneBadSetting_NamesItWithItsRule(string setting, string expected) =>
        Assert.Equal(expected, Assert.Single(With(setting).Validate()));

    [Fact]
    public void Validate_EverySettingBad_ReportsEveryOne()
    {
        var errors = new SchedulerOptions
        {
            Capacity = -1,
            KillGrace = TimeSpan.FromHours(2),
            ReconcileInterval = TimeSpan.Zero,
            IdleInterval = TimeSpan.Zero,
            DueBatch = -5,
        }.Validate();

        Assert.Equal(
            ["capacity", "kill-grace", "reconcile-interval", "idle-interval", "due-batch"],
            errors.Select(error => error[..error.IndexOf(':', StringComparison.Ordinal)]));
    }
}
