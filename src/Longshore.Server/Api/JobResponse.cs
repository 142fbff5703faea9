using Longshore.Core.Jobs;
using Longshore.Core.Tasks;

namespace Longshore.Server.Api;

/// <summary>A job as the API shows it: its definition, its state, and per task group the replicas and their health.</summary>
public sealed record JobResponse
{
    public required string Id { get; init; }

    /// <summary>PENDING (not every replica runs yet), RUNNING (every group at its count) or STOPPED (deleted).</summary>
    public required string JobState { get; init; }

    public int Generation { get; init; }

    public required List<JobGroup> Tasks { get; init; }

    public required List<GroupStatus> Groups { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; init; }

    public static async Task<JobResponse> LoadAsync(Job job, IJobStore jobs, JobHealthMonitor? monitor, CancellationToken cancellationToken)
    {
        var runs = await jobs.ListJobRunsAsync(job.Id, 200, cancellationToken);
        var groups = job.Definition.Tasks ?? [];
        var statuses = groups.Select((group, index) => GroupStatus.From(job, group, index, runs, monitor)).ToList();
        var state = job.State == Core.Jobs.JobState.Stopped ? "STOPPED"
            : statuses.All(status => status.Running >= status.Replicas) ? "RUNNING" : "PENDING";
        return new JobResponse
        {
            Id = job.Id,
            JobState = state,
            Generation = job.Generation,
            Tasks = groups,
            Groups = statuses,
            CreatedAt = job.CreatedAt,
            UpdatedAt = job.UpdatedAt,
        };
    }
}

public sealed record GroupStatus
{
    public required string Key { get; init; }
    public int Replicas { get; init; }
    public int Running { get; init; }
    public int Pending { get; init; }

    /// <summary>True while replicas keep ending soon after they start (the third quick end in a row and on).</summary>
    public bool CrashLoop { get; init; }

    /// <summary>When the next replacement may start, while one waits out its backoff.</summary>
    public DateTimeOffset? NextRestartAt { get; init; }

    /// <summary>Exit codes of the most recently ended replicas, newest first.</summary>
    public required List<int?> LastExitCodes { get; init; }

    public required List<ReplicaResponse> ReplicaRuns { get; init; }

    internal static GroupStatus From(Job job, JobGroup group, int index, IReadOnlyList<TaskRun> runs, JobHealthMonitor? monitor)
    {
        var mine = runs.Where(run => run.JobGroup == index).ToList();
        var active = mine.Where(run => !run.State.IsTerminal()).OrderBy(run => run.Seq).ToList();
        var waiting = active.Where(run => run.State == TaskState.WaitingOnOffers).ToList();
        return new GroupStatus
        {
            Key = JobReplicas.GroupKey(job.Id, group),
            Replicas = job.State == Core.Jobs.JobState.Stopped ? 0 : group.Replicas,
            Running = active.Count(run => run.State == TaskState.Running && run.Generation == job.Generation),
            Pending = waiting.Count,
            CrashLoop = active.Any(run => run.Attempt >= 3),
            NextRestartAt = waiting.Count == 0 ? null : waiting.Min(run => run.NotBefore),
            LastExitCodes = mine.Where(run => run.State.IsTerminal()).OrderByDescending(run => run.Seq).Take(5).Select(run => run.ExitCode).ToList(),
            ReplicaRuns = active.Select(run => new ReplicaResponse(TaskRunResponse.From(run), run.Generation, monitor?.HealthOf(run.MesosId))).ToList(),
        };
    }
}

public sealed record ReplicaResponse(TaskRunResponse Run, int? Generation, ReplicaHealth? Health);
