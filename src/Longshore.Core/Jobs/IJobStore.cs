using Longshore.Core.Tasks;

namespace Longshore.Core.Jobs;

/// <summary>Where jobs are kept. Updates are compare-and-set on <see cref="Job.Version"/>.</summary>
public interface IJobStore
{
    /// <summary>Stores a new job; an existing stopped job of that id is replaced. False if a running one exists.</summary>
    Task<bool> CreateJobAsync(Job job, CancellationToken cancellationToken = default);

    Task<Job?> GetJobAsync(string id, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<Job>> ListJobsAsync(CancellationToken cancellationToken = default);

    /// <summary>Replaces the job if its stored version is still <paramref name="expectedVersion"/>.</summary>
    Task<bool> TryUpdateJobAsync(Job job, long expectedVersion, CancellationToken cancellationToken = default);

    /// <summary>The job's active runs and its most recent ended ones (newest first).</summary>
    Task<IReadOnlyList<TaskRun>> ListJobRunsAsync(string jobId, int endedLimit, CancellationToken cancellationToken = default);

    /// <summary>Inserts a replica; with <paramref name="replaces"/>, only if that ended run has not been replaced yet.</summary>
    Task<bool> InsertReplicaAsync(TaskRun run, string? replaces, CancellationToken cancellationToken = default);
}
