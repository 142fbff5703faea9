namespace Longshore.Core.Scheduling;

/// <summary>How the scheduler loop paces itself. Every default is what <c>longshore server</c> uses.</summary>
public sealed record SchedulerOptions
{
    /// <summary>Most runs active at once across all families (global capacity). Default 32.</summary>
    public int Capacity { get; init; } = 32;

    /// <summary>Time between SIGTERM and SIGKILL when a run is killed. Default 10 s.</summary>
    public TimeSpan KillGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often active runs are compared with what the engine holds. Default 30 s.</summary>
    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest sleep between passes when nothing wakes the loop. Default 1 s.</summary>
    public TimeSpan IdleInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// On shutdown, how long launches under way may take to finish before they are cut off (and left to the next start's
    /// reconciliation). Below the host's 30 s shutdown timeout, which is below the systemd unit's TimeoutStopSec. Default 15 s.
    /// </summary>
    public TimeSpan ShutdownLaunchGrace { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Most waiting runs read per pass. Default 512.</summary>
    public int DueBatch { get; init; } = 512;

    /// <summary>Every failing setting, named with its rule.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Capacity is < 1 or > 100_000)
            errors.Add($"capacity: must be between 1 and 100000, got {Capacity}");
        if (KillGrace < TimeSpan.Zero || KillGrace > TimeSpan.FromHours(1))
            errors.Add($"kill-grace: must be between 0 and 3600 seconds, got {KillGrace.TotalSeconds}");
        if (ReconcileInterval < TimeSpan.FromSeconds(1))
            errors.Add($"reconcile-interval: must be at least 1 second, got {ReconcileInterval.TotalSeconds}");
        if (IdleInterval <= TimeSpan.Zero)
            errors.Add("idle-interval: must be positive");
        if (DueBatch < 1)
            errors.Add("due-batch: must be at least 1");
        return errors;
    }
}
