using System.Diagnostics.Metrics;

namespace Longshore.Core.Scheduling;

/// <summary>Counters the scheduler keeps; exported by the server at <c>/metrics</c>.</summary>
public sealed class SchedulerMetrics : IDisposable
{
    public const string MeterName = "Longshore.Scheduler";

    private readonly Meter _meter = new(MeterName);

    public SchedulerMetrics()
    {
        Launches = _meter.CreateCounter<long>("longshore_launches", description: "Runs handed to the engine.");
        Ends = _meter.CreateCounter<long>("longshore_run_ends", description: "Runs that reached a terminal state, by state.");
        LoopSeconds = _meter.CreateHistogram<double>("longshore_scheduler_loop_seconds", unit: "s", description: "Duration of one scheduler pass.");
    }

    public Meter Meter => _meter;

    public Counter<long> Launches { get; }

    public Counter<long> Ends { get; }

    public Histogram<double> LoopSeconds { get; }

    public void Dispose() => _meter.Dispose();
}
