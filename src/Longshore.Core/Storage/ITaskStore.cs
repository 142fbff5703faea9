using Longshore.Core.Execution;
using Longshore.Core.Tasks;

namespace Longshore.Core.Storage;

/// <summary>
/// The durable record of every run: the single source of truth. Every state change is a compare-and-set from the
/// states the caller expects, so a duplicate or late update can never move a run backwards.
/// </summary>
public interface ITaskStore
{
    /// <summary>A stable id for this store, used to label what the engine holds for it.</summary>
    string InstanceId { get; }

    Task InsertAsync(TaskRun run, CancellationToken cancellationToken = default);

    Task<TaskRun?> GetAsync(string mesosId, CancellationToken cancellationToken = default);

    /// <summary>Newest first; <see cref="RunQuery.AfterMesosId"/> continues after that run (after a run not stored: nothing).</summary>
    Task<IReadOnlyList<TaskRun>> ListAsync(RunQuery query, CancellationToken cancellationToken = default);

    /// <summary>Runs waiting to launch whose backoff is over, oldest first, leaving out the families in <paramref name="skipFamilies"/>.</summary>
    /// <param name="skipFamilies">Families at their <c>max_concurrent</c>: their waiting runs could not launch, and must not hide those behind them.</param>
    Task<IReadOnlyList<TaskRun>> ListDueAsync(DateTimeOffset now, int limit, IReadOnlyCollection<string> skipFamilies, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<TaskRun>> ListActiveAsync(CancellationToken cancellationToken = default);

    /// <summary>Active runs per family id.</summary>
    Task<IReadOnlyDictionary<string, int>> CountActiveByFamilyAsync(CancellationToken cancellationToken = default);

    Task<IReadOnlyDictionary<TaskState, long>> CountByStateAsync(CancellationToken cancellationToken = default);

    /// <summary>The earliest <see cref="TaskRun.NotBefore"/> of any waiting run, to sleep until it.</summary>
    Task<DateTimeOffset?> NextDueAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Applies the transition if the run is in one of <see cref="RunTransition.From"/>; with it, atomically, stores
    /// the logs and inserts the retry. Returns false (changing nothing) when the run is elsewhere.
    /// </summary>
    Task<bool> TryTransitionAsync(RunTransition transition, CancellationToken cancellationToken = default);

    /// <summary>Launches and ends per minute since <paramref name="since"/>, for the dashboard's chart.</summary>
    Task<IReadOnlyList<ActivityBucket>> ActivityAsync(DateTimeOffset since, CancellationToken cancellationToken = default);

    /// <summary>A number that changes whenever any run changes; cheap to poll.</summary>
    Task<long> ChangeMarkAsync(CancellationToken cancellationToken = default);

    Task<TaskLogs?> GetLogsAsync(string mesosId, CancellationToken cancellationToken = default);

    /// <summary>Deletes a run that has ended, with its logs. False if it is not terminal.</summary>
    Task<bool> DeleteTerminalAsync(string mesosId, CancellationToken cancellationToken = default);
}

/// <summary>One minute of activity: runs staged, runs that finished, runs that ended any other way.</summary>
public sealed record ActivityBucket(DateTimeOffset Minute, int Launches, int Finished, int Failures);

public sealed record RunQuery(int Limit, string? AfterMesosId = null, TaskState? State = null, string? FamilyId = null);

/// <summary>A compare-and-set from <see cref="From"/> to <see cref="To"/> with what is learned on the way.</summary>
public sealed record RunTransition(string MesosId, IReadOnlyCollection<TaskState> From, TaskState To, DateTimeOffset At)
{
    public int? ExitCode { get; init; }

    public string? Reason { get; init; }

    public string? Agent { get; init; }

    public string? ContainerId { get; init; }

    public TaskLogs? Logs { get; init; }

    /// <summary>The next attempt, inserted in the same transaction.</summary>
    public TaskRun? Retry { get; init; }

    /// <summary>
    /// When the run started, for a move past <see cref="TaskState.Running"/> that carries its start with it (the end of a
    /// run whose start report had not been written yet): recorded unless a start already is. A move to
    /// <see cref="TaskState.Running"/> starts the run at <see cref="At"/> and needs none.
    /// </summary>
    public DateTimeOffset? StartedAt { get; init; }
}
