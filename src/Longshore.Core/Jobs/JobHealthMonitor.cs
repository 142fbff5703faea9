using System.Collections.Concurrent;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;
using Microsoft.Extensions.Logging;

namespace Longshore.Core.Jobs;

/// <summary>Runs one health check against one replica.</summary>
public interface IHealthProbe
{
    Task<(bool Healthy, string Detail)> ProbeAsync(TaskRun run, HealthCheck check, CancellationToken cancellationToken = default);
}

/// <summary>The last health seen for a replica.</summary>
public sealed record ReplicaHealth(bool Healthy, int ConsecutiveFailures, string Detail, DateTimeOffset CheckedAt);

/// <summary>
/// Checks running replicas of groups that declare a health check, and kills a replica that fails
/// <see cref="HealthCheck.Failures"/> times in a row (the job reconciler then replaces it). Failure counts live in
/// memory: after a restart every replica starts again from zero.
/// </summary>
public sealed partial class JobHealthMonitor(IJobStore jobs, Scheduler scheduler, IHealthProbe probe, TimeProvider time, ILogger<JobHealthMonitor> logger)
{
    private readonly ConcurrentDictionary<string, ReplicaHealth> _health = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Task> _checks = new(StringComparer.Ordinal);

    public ReplicaHealth? HealthOf(string mesosId) => _health.GetValueOrDefault(mesosId);

    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await PassAsync(cancellationToken);
                await Task.Delay(TimeSpan.FromMilliseconds(500), time, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogPassFailed(logger, e);
                await Task.Delay(TimeSpan.FromSeconds(1), time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }

        await Task.WhenAll(_checks.Values).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task PassAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var job in await jobs.ListJobsAsync(cancellationToken))
        {
            var groups = job.Definition.Tasks ?? [];
            if (job.State == JobState.Stopped || groups.All(group => group.HealthCheck is null))
                continue;
            foreach (var run in await jobs.ListJobRunsAsync(job.Id, 0, cancellationToken))
            {
                if (run.State != TaskState.Running || run.JobGroup is not { } index || index >= groups.Count || groups[index].HealthCheck is not { } check)
                    continue;
                seen.Add(run.MesosId);
                var last = _health.GetValueOrDefault(run.MesosId);
                var due = last is null
                    ? (run.StartedAt ?? now) + TimeSpan.FromSeconds(check.GraceSeconds)
                    : last.CheckedAt + TimeSpan.FromSeconds(check.IntervalSeconds);
                if (due <= now && !_checks.ContainsKey(run.MesosId))
                {
                    var task = CheckAsync(run, check, cancellationToken);
                    _checks[run.MesosId] = task;
                    _ = task.ContinueWith(_ => _checks.TryRemove(run.MesosId, out var _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
            }
        }

        foreach (var gone in _health.Keys.Where(id => !seen.Contains(id)).ToList())
            _health.TryRemove(gone, out _);
    }

    private async Task CheckAsync(TaskRun run, HealthCheck check, CancellationToken cancellationToken)
    {
        bool healthy;
        string detail;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(check.TimeoutSeconds));
            try
            {
                (healthy, detail) = await probe.ProbeAsync(run, check, timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                (healthy, detail) = (false, $"no answer within {check.TimeoutSeconds} s");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                (healthy, detail) = (false, e.GetBaseException().Message);
            }
        }

        var failures = healthy ? 0 : (_health.GetValueOrDefault(run.MesosId)?.ConsecutiveFailures ?? 0) + 1;
        _health[run.MesosId] = new ReplicaHealth(healthy, failures, detail, time.GetUtcNow());
        if (failures >= check.Failures)
        {
            LogUnhealthy(logger, run.MesosId, failures, detail);
            await scheduler.KillAsync(run.MesosId, $"health check failed {failures} times in a row ({detail})", cancellationToken);
        }
    }

    [LoggerMessage(3101, LogLevel.Warning, "Replica {MesosId} failed its health check {Failures} times in a row, replacing it: {Detail}")]
    private static partial void LogUnhealthy(ILogger logger, string mesosId, int failures, string detail);

    [LoggerMessage(3102, LogLevel.Error, "Health check pass failed")]
    private static partial void LogPassFailed(ILogger logger, Exception exception);
}
