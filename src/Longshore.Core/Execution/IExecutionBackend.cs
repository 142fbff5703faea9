using System.Threading.Channels;
using Longshore.Core.Tasks;

namespace Longshore.Core.Execution;

/// <summary>
/// An engine that runs task runs as containers: the local Docker-compatible engine, a Mesos cluster, ….
/// Status comes back as <see cref="StatusUpdate"/>s on <see cref="Updates"/>; the scheduler applies them.
/// Optional abilities are the capability interfaces beside this one (<see cref="ITaskLogSource"/>).
/// </summary>
public interface IExecutionBackend
{
    /// <summary>Short engine name shown in health and logs, e.g. <c>docker</c>.</summary>
    string Name { get; }

    /// <summary>Status updates for launched and adopted runs, in the order the engine saw them.</summary>
    ChannelReader<StatusUpdate> Updates { get; }

    /// <summary>Checks the engine answers; throws <see cref="EngineUnavailableException"/> naming what was tried.</summary>
    Task CheckAvailableAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Starts the run (already recorded as TASK_STAGING) and watches it. Launching the same run twice must not
    /// start a second container. Throws <see cref="LaunchException"/> when the engine refuses or cannot be reached.
    /// </summary>
    Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default);

    /// <summary>Asks the engine to stop the run: a polite signal, then a forced one after <paramref name="grace"/>.</summary>
    /// <returns>False when the engine holds nothing for the run (yet).</returns>
    Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default);

    /// <summary>
    /// Compares the active runs with what the engine holds. Runs the engine holds are watched again (their updates
    /// follow on <see cref="Updates"/>, including the end of any that finished meanwhile); runs it does not hold
    /// are reported in the result as gone. Anything of this store's the engine holds for no active run is removed.
    /// </summary>
    Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default);

    /// <summary>Frees what the engine keeps for a run whose end is durably recorded (the stopped container).</summary>
    Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default);
}

/// <summary>Capability: the engine can show a run's output while it runs.</summary>
public interface ITaskLogSource
{
    Task<TaskLogs?> ReadLogsAsync(TaskRun run, CancellationToken cancellationToken = default);

    /// <summary>Streams output as it is written until the run ends; null when the engine holds nothing for the run.</summary>
    IAsyncEnumerable<string>? FollowLogs(TaskRun run, CancellationToken cancellationToken = default);
}

/// <summary>Where a launched run was placed.</summary>
public sealed record LaunchResult(string ContainerId, string Agent);

public sealed record ReconcileResult(IReadOnlyList<string> GoneMesosIds, int OrphansRemoved)
{
    /// <summary>
    /// Some runs could not be decided yet (a launch that may still be under way): reconcile again after this long rather
    /// than at the next regular interval.
    /// </summary>
    public TimeSpan? RecheckAfter { get; init; }
}

/// <summary>A run's captured output. <see cref="Truncated"/> says the head was dropped to keep the tail.</summary>
public sealed record TaskLogs(string Stdout, string Stderr, bool Truncated);

/// <summary>What an engine reports about one run.</summary>
public sealed record StatusUpdate(string MesosId, TaskState State, DateTimeOffset At)
{
    public int? ExitCode { get; init; }

    public string? Reason { get; init; }

    public string? ContainerId { get; init; }

    public string? Agent { get; init; }

    /// <summary>The output kept with a terminal update, stored before the engine's copy is released.</summary>
    public TaskLogs? Logs { get; init; }

    /// <summary>
    /// For a terminal update: when the run started, if that has not been recorded on its own. The scheduler sets it when
    /// a run's start report and its end are waiting to be applied together (a short task on a busy engine): both are one
    /// write then, the start's time kept.
    /// </summary>
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>
    /// Called by the scheduler once the update is applied (durably recorded, or found stale). Engines that re-send
    /// updates until acknowledged (Mesos) acknowledge here, so a crash before the write means the update comes again.
    /// </summary>
    public Func<CancellationToken, Task>? Applied { get; init; }
}

/// <summary>
/// Capability: a launch may wait inside the engine (for a Mesos offer) before anything starts, and can be withdrawn
/// while it waits. A withdrawn launch ends with a <see cref="LaunchException"/>.
/// </summary>
public interface IDeferredLaunch
{
    /// <returns>True when the run was still waiting and is now withdrawn; false when the engine already started it.</returns>
    bool TryWithdraw(string mesosId);
}

/// <summary>The engine could not be reached at all.</summary>
public sealed class EngineUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A launch did not happen. <see cref="IsTransient"/> faults (engine unreachable, busy) are system faults and spend
/// <c>system_retries</c>; the others (image missing, invalid spec) would fail the same way again.
/// </summary>
public sealed class LaunchException(string message, bool isTransient, Exception? inner = null) : Exception(message, inner)
{
    public bool IsTransient { get; } = isTransient;
}

/// <summary>Capability: the engine can run a command inside a run's container (used by command health checks).</summary>
public interface ITaskExec
{
    /// <summary>Runs <paramref name="command"/> in the run's container and returns its exit code and output.</summary>
    Task<(int ExitCode, string Output)> ExecAsync(TaskRun run, IReadOnlyList<string> command, CancellationToken cancellationToken = default);
}

/// <summary>
/// An engine connection only the leading instance may hold (Mesos: one subscribed scheduler per framework). The
/// scheduler lets go of it when its leadership ends, so the next leader can take it.
/// </summary>
public interface ILeaderBoundBackend
{
    Task StepDownAsync();
}
