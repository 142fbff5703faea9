using System.Diagnostics.Metrics;

namespace Longshore.Core.Scheduling;

/// <summary>
/// What the scheduler measures, as .NET instruments; the server exports them at <c>/metrics</c> in Prometheus's
/// conventions (counters get <c>_total</c>). The gauges (free capacity, active runs per family) are observed from the
/// scheduler that leads; other instances report none.
/// </summary>
public sealed class SchedulerMetrics : IDisposable
{
    public const string MeterName = "Longshore.Scheduler";

    /// <summary>The tags each instrument carries: the exported series' label names, in order.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Labels = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["longshore_launches"] = ["engine"],
        ["longshore_launch_failures"] = ["engine", "kind"],
        ["longshore_run_ends"] = ["state", "family"],
        ["longshore_scheduler_loop_seconds"] = [],
        ["longshore_launch_seconds"] = ["engine"],
        ["longshore_queue_step_seconds"] = ["queue", "step"],
        ["longshore_scheduler_free_capacity"] = [],
        ["longshore_family_active_runs"] = ["family", "state"],
    };

    private readonly Meter _meter = new(MeterName);

    public SchedulerMetrics()
    {
        Launches = _meter.CreateCounter<long>("longshore_launches", description: "Runs handed to the engine, by engine.");
        LaunchFailures = _meter.CreateCounter<long>("longshore_launch_failures",
            description: "Launches the engine refused or could not take, by engine and kind (transient: spends system_retries; permanent: the run fails).");
        Ends = _meter.CreateCounter<long>("longshore_run_ends", description: "Runs that reached a terminal state, by state and task family.");
        LoopSeconds = _meter.CreateHistogram<double>("longshore_scheduler_loop_seconds", unit: "s", description: "Duration of one scheduler pass.");
        LaunchSeconds = _meter.CreateHistogram<double>("longshore_launch_seconds", unit: "s",
            description: "From TASK_STAGING to TASK_RUNNING: how long the engine takes to start a run, by engine.");
        StepSeconds = _meter.CreateHistogram<double>("longshore_queue_step_seconds", unit: "s",
            description: "Time a queue's message spends in each step, by queue and step: recorded (received -> task recorded), staged (recorded -> TASK_STAGING), running (-> TASK_RUNNING), ended (-> terminal).");
    }

    public Meter Meter => _meter;

    public Counter<long> Launches { get; }

    public Counter<long> LaunchFailures { get; }

    public Counter<long> Ends { get; }

    public Histogram<double> LoopSeconds { get; }

    public Histogram<double> LaunchSeconds { get; }

    public Histogram<double> StepSeconds { get; }

    public void Dispose() => _meter.Dispose();
}
