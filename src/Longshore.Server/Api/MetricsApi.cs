using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Longshore.Core.Queues;
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
        var clockOffset = factory.CreateGauge("longshore_store_clock_offset_seconds", "How far the store server's clock is ahead of this machine's (negative: behind).");
        var clock = app.Services.GetRequiredService<StoreClock>();
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
            clockOffset.Set(clock.Offset.TotalSeconds);
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
        var forwarder = new MeterForwarder([app.Services.GetRequiredService<SchedulerMetrics>().Meter, app.Services.GetRequiredService<QueueMetrics>().Meter], factory,
            name => SchedulerMetrics.Labels.GetValueOrDefault(name) ?? QueueMetrics.Labels);
        registry.AddBeforeCollectCallback(forwarder.Observe);
        app.Lifetime.ApplicationStopped.Register(forwarder.Dispose);
        app.MapMetrics("/metrics", registry);
    }
}

/// <summary>
/// Exports .NET instruments as Prometheus series named as Prometheus asks: a counter <c>x</c> becomes <c>x_total</c>,
/// a histogram keeps its name (its unit is in it, <c>_seconds</c>), an observable gauge is read at each scrape. The label
/// names of an instrument are the tags it is recorded with, as the instrument's owner lists them.
/// </summary>
internal sealed class MeterForwarder : IDisposable
{
    private readonly MeterListener _listener = new();
    // Instruments are published while measurements flow (a scheduler built after the first scrape): concurrent maps.
    private readonly ConcurrentDictionary<Instrument, Action<double, ReadOnlySpan<KeyValuePair<string, object?>>>> _writers = new();
    private readonly ConcurrentDictionary<Instrument, (Gauge Gauge, HashSet<string[]> Seen)> _gauges = new();
    private readonly Lock _observing = new();

    public MeterForwarder(IReadOnlyList<Meter> meters, IMetricFactory factory, Func<string, string[]> labels)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (!meters.Contains(instrument.Meter))
                return;
            var names = labels(instrument.Name);
            var help = instrument.Description ?? instrument.Name;
            switch (instrument)
            {
                case Histogram<double>:
                    var histogram = factory.CreateHistogram(instrument.Name, help, names, new HistogramConfiguration
                    {
                        Buckets = instrument.Name == "longshore_scheduler_loop_seconds" ? Histogram.ExponentialBuckets(0.0005, 2, 16) : Histogram.ExponentialBuckets(0.001, 2, 20),
                    });
                    _writers[instrument] = (value, tags) => histogram.WithLabels(Values(names, tags)).Observe(value);
                    break;
                case ObservableGauge<int> or ObservableGauge<long> or ObservableGauge<double>:
                    _gauges[instrument] = (factory.CreateGauge(instrument.Name, help, names), new HashSet<string[]>(LabelValues.Instance));
                    _writers[instrument] = (value, tags) =>
                    {
                        var (gauge, seen) = _gauges[instrument];
                        var values = Values(names, tags);
                        seen.Add(values);
                        gauge.WithLabels(values).Set(value);
                    };
                    break;
                default:
                    var counter = factory.CreateCounter(instrument.Name + "_total", help, names);
                    _writers[instrument] = (value, tags) => counter.WithLabels(Values(names, tags)).Inc(value);
                    break;
            }

            listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Write(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Write(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Write(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>Reads every observable gauge now; a series no longer observed (a deleted queue) is removed.</summary>
    public Task Observe(CancellationToken cancellationToken)
    {
        lock (_observing)
        {
            var before = _gauges.ToDictionary(pair => pair.Key, pair => pair.Value.Seen.ToList());
            foreach (var (_, seen) in _gauges.Values)
                seen.Clear();
            _listener.RecordObservableInstruments();
            foreach (var (instrument, (gauge, seen)) in _gauges)
            {
                foreach (var gone in before[instrument].Where(values => !seen.Contains(values)))
                    gauge.WithLabels(gone).Remove();
            }
        }

        return Task.CompletedTask;
    }

    private void Write(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (_writers.TryGetValue(instrument, out var write))
            write(value, tags);
    }

    private static string[] Values(string[] names, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var values = new string[names.Length];
        for (var i = 0; i < names.Length; i++)
        {
            values[i] = string.Empty;
            foreach (var tag in tags)
            {
                if (tag.Key == names[i])
                    values[i] = tag.Value?.ToString() ?? string.Empty;
            }
        }

        return values;
    }

    public void Dispose() => _listener.Dispose();

    private sealed class LabelValues : IEqualityComparer<string[]>
    {
        public static readonly LabelValues Instance = new();

        public bool Equals(string[]? x, string[]? y) => x is not null && y is not null && x.AsSpan().SequenceEqual(y);

        public int GetHashCode(string[] obj)
        {
            var hash = new HashCode();
            foreach (var value in obj)
                hash.Add(value, StringComparer.Ordinal);
            return hash.ToHashCode();
        }
    }
}
