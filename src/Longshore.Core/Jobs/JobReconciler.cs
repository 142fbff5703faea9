using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Microsoft.Extensions.Logging;

namespace Longshore.Core.Jobs;

/// <summary>How jobs are kept in shape. Defaults are what the server uses.</summary>
public sealed record JobOptions
{
    /// <summary>Longest time between two passes over every job. Default 1 s.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A replica that ran this long is not crash-looping: its replacement starts at once. Default 10 s.</summary>
    public TimeSpan StableAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Ended runs per job considered for crash history. Default 200.</summary>
    public int HistoryLimit { get; init; } = 200;
}

/// <summary>
/// Keeps every job at its declared shape: replaces replicas that ended (with a backoff that grows while they keep
/// crashing), scales up and down, rolls over to a new container one replica at a time, and stops deleted jobs.
/// Runs beside the scheduler; launches go through the scheduler like any other run.
/// </summary>
public sealed partial class JobReconciler
{
    private readonly IJobStore _jobs;
    private readonly Scheduler _scheduler;
    private readonly RetryPolicy _backoff;
    private readonly JobOptions _options;
    private readonly TimeProvider _time;
    private readonly Func<Guid> _newId;
    private readonly ILogger _logger;
    private readonly WakeSignal _wake;

    public JobReconciler(IJobStore jobs, Scheduler scheduler, RetryPolicy backoff, JobOptions options, TimeProvider time, Func<Guid> newId, ILogger<JobReconciler> logger)
    {
        _jobs = jobs;
        _scheduler = scheduler;
        _backoff = backoff;
        _options = options;
        _time = time;
        _newId = newId;
        _logger = logger;
        _wake = new WakeSignal(time);
        scheduler.RunEnded += (run, _) =>
        {
            if (run.JobId is not null)
                Nudge();
        };
    }

    public void Nudge() => _wake.Nudge();

    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                // Replicas found by start-up reconciliation must be known before deciding what is missing.
                if (_scheduler.Reconciled)
                {
                    foreach (var job in await _jobs.ListJobsAsync(cancellationToken))
                        await ReconcileAsync(job, cancellationToken);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogPassFailed(e);
            }

            await _wake.WaitAsync(_options.Interval, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>One job brought one step closer to its declared shape.</summary>
    public async Task ReconcileAsync(Job job, CancellationToken cancellationToken = default)
    {
        // A stopped job's plan only kills what still lives; its crash history would be read every pass for nothing.
        var runs = await _jobs.ListJobRunsAsync(job.Id, job.State == JobState.Stopped ? 0 : _options.HistoryLimit, cancellationToken);
        var actions = JobPlanner.Plan(job, runs, _options.StableAfter, _backoff.Backoff);
        foreach (var action in actions)
        {
            switch (action)
            {
                case KillReplica kill:
                    await _scheduler.KillAsync(kill.MesosId, kill.Reason, cancellationToken);
                    break;
                case LaunchReplica launch:
                    await LaunchAsync(job, launch, cancellationToken);
                    break;
            }
        }
    }

    private async Task LaunchAsync(Job job, LaunchReplica launch, CancellationToken cancellationToken)
    {
        var group = job.Definition.Tasks![launch.Group];
        var now = _time.GetUtcNow();
        var definition = JobReplicas.ToTaskDefinition(job.Id, group);
        var run = new TaskRun
        {
            MesosId = JobReplicas.NewMesosId(job.Id, group, now, _newId()),
            FamilyId = definition.Id!,
            Definition = definition,
            Attempt = launch.Attempt,
            NotBefore = now + launch.Delay,
            CreatedAt = now,
            UpdatedAt = now,
            RetryOf = launch.Replaces?.MesosId,
            JobId = job.Id,
            JobGroup = launch.Group,
            Generation = job.Generation,
        };
        if (await _jobs.InsertReplicaAsync(run, launch.Replaces?.MesosId, cancellationToken))
        {
            LogReplicaAdded(job.Id, run.MesosId, launch.Attempt, launch.Delay.TotalSeconds, launch.Replaces?.MesosId);
            _scheduler.Nudge();
        }
    }

    [LoggerMessage(3001, LogLevel.Information, "Job {JobId}: replica {MesosId} added (attempt {Attempt}, starts in {DelaySeconds:0.0} s, replaces {Replaces})")]
    private partial void LogReplicaAdded(string jobId, string mesosId, int attempt, double delaySeconds, string? replaces);

    [LoggerMessage(3002, LogLevel.Error, "Job reconciliation pass failed")]
    private partial void LogPassFailed(Exception exception);
}
