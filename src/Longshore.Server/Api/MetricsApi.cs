using System.Diagnostics.Metrics;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Prometheus;

namespace Longshore.Server.Api;

/// <summary>
/// Prometheus <c>GET /metrics</c>: runs by state (read from the store at scrape time) beside the scheduler's own
/// counters (launches, ends by state, loop latency), which prometheus-net exports from their .NET meter.
/// </summary>
public static class MetricsApi
{
    public static void MapMetricsApi(this WebApplication app)
    {
        var registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(registry);
        var byState = factory.CreateGauge("longshore_tasks", "Runs in the store, by state.", "state");
        var leader = factory.CreateGauge("longshore_leader", "1 while this instance holds the scheduler lease, else 0.");
        var term = factory.CreateGauge("longshore_leader_term", "The scheduler lease term this instance leads under, or last saw.");
        var retentionAge = factory.CreateGauge("longshore_task_retention_seconds", "Ended runs are deleted this long after their last state change (0: kept).");
        var retentionCount = factory.CreateGauge("longshore_task_retention_count", "Most ended runs kept per task id (0: no limit).");
        var pruned = factory.CreateCounter("longshore_task_retention_pruned_total", "Ended runs this instance deleted, by rule (age, count).", "rule");
        var lastPass = factory.CreateGauge("longshore_task_retention_last_pass_timestamp_seconds", "When this instance last finished a retention pass (0: never; only the leader prunes).");
        var retention = app.Services.GetRequiredService<RunRetention>();
        var election = app.Services.GetRequiredService<LeaderElection>();
        var store = app.Services.GetRequiredService<ITaskStore>();
        registry.AddBeforeCollectCallback(async cancellationToken =>
        {
            leader.Set(election.IsLeader ? 1 : 0);
            term.Set(election.Term ?? election.LastSeen?.Term ?? 0);
            retentionAge.Set(retention.Options.MaxAge.TotalSeconds);
            retentionCount.Set(retention.Options.MaxPerTaskId);
            pruned.WithLabels("age").IncTo(retention.PrunedByAge);
            pruned.WithLabels("count").IncTo(retention.PrunedByCount);
            lastPass.Set(retention.LastPassAt?.ToUnixTimeMilliseconds() / 1000.0 ?? 0);
            var counts = await store.CountByStateAsync(cancellationToken);
            foreach (var name in TaskStates.WireNames)
                byState.WithLabels(name).Set(0);
            foreach (var (state, count) in counts)
                byState.WithLabels(state.ToWire()).Set(count);
        });
        var forwarder = new SchedulerMetricsForwarder(app.Services.GetRequiredService<SchedulerMetrics>().Meter, factory);
        app.Lifetime.ApplicationStopped.Register(forwarder.Dispose);
        app.MapMetrics("/metrics", registry);
    }
}

/// <summary>Copies the scheduler's .NET meter measurements into Prometheus series as they are recorded.</summary>
internal sealed class SchedulerMetricsForwarder : IDisposable
{
    private readonly MeterListener _listener = new();

    public SchedulerMetricsForwarder(Meter meter, IMetricFactory factory)
    {
        var launches = factory.CreateCounter("longshore_launches_total", "Runs handed to the engine.");
        var ends = factory.CreateCounter("longshore_run_ends_total", "Runs that reached a terminal state, by state (failures are TASK_FAILED, TASK_LOST, ...).", ["state"]);
        var loop = factory.CreateHistogram("longshore_scheduler_loop_seconds", "Duration of one scheduler pass.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (instrument.Name == "longshore_launches")
                launches.Inc(value);
            else if (instrument.Name == "longshore_run_ends")
                ends.WithLabels(StateTag(tags)).Inc(value);
        });
        _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            if (instrument.Name == "longshore_scheduler_loop_seconds")
                loop.Observe(value);
        });
        _listener.Start();
    }

    private static string StateTag(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == "state")
                return tag.Value as string ?? "unknown";
        }

        return "unknown";
    }

    public void Dispose() => _listener.Dispose();
}
