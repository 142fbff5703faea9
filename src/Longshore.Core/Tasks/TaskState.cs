using System.Collections.Frozen;

namespace Longshore.Core.Tasks;

/// <summary>
/// The life of one run, named as Mesos names task states (plus <c>WAITING_ON_OFFERS</c> for a run not yet
/// launched) so the Hippo API shows the same words whatever engine runs the task.
/// </summary>
public enum TaskState
{
    WaitingOnOffers,
    Staging,
    Starting,
    Running,
    Killing,
    Finished,
    Failed,
    Killed,
    Lost,
    Error,
    Dropped,
    Gone,
    GoneByOperator,
    Unreachable,
    Unknown,
}

/// <summary>The explicit transition table and the names used on the wire.</summary>
public static class TaskStates
{
    private static readonly FrozenDictionary<TaskState, string> Names = new Dictionary<TaskState, string>
    {
        [TaskState.WaitingOnOffers] = "WAITING_ON_OFFERS",
        [TaskState.Staging] = "TASK_STAGING",
        [TaskState.Starting] = "TASK_STARTING",
        [TaskState.Running] = "TASK_RUNNING",
        [TaskState.Killing] = "TASK_KILLING",
        [TaskState.Finished] = "TASK_FINISHED",
        [TaskState.Failed] = "TASK_FAILED",
        [TaskState.Killed] = "TASK_KILLED",
        [TaskState.Lost] = "TASK_LOST",
        [TaskState.Error] = "TASK_ERROR",
        [TaskState.Dropped] = "TASK_DROPPED",
        [TaskState.Gone] = "TASK_GONE",
        [TaskState.GoneByOperator] = "TASK_GONE_BY_OPERATOR",
        [TaskState.Unreachable] = "TASK_UNREACHABLE",
        [TaskState.Unknown] = "TASK_UNKNOWN",
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<string, TaskState> ByName =
        Names.ToFrozenDictionary(pair => pair.Value, pair => pair.Key, StringComparer.Ordinal);

    /// <summary>States in which an engine may hold a container or task for the run.</summary>
    public static readonly FrozenSet<TaskState> Active =
        new[] { TaskState.Staging, TaskState.Starting, TaskState.Running, TaskState.Killing, TaskState.Unreachable }.ToFrozenSet();

    /// <summary>States that end a run; nothing leaves them.</summary>
    public static readonly FrozenSet<TaskState> Terminal = new[]
    {
        TaskState.Finished, TaskState.Failed, TaskState.Killed, TaskState.Lost, TaskState.Error,
        TaskState.Dropped, TaskState.Gone, TaskState.GoneByOperator, TaskState.Unknown,
    }.ToFrozenSet();

    /// <summary>Terminal states caused by the platform rather than the task: they consume <c>system_retries</c>.</summary>
    public static readonly FrozenSet<TaskState> SystemFaults = new[]
    {
        TaskState.Lost, TaskState.Error, TaskState.Dropped, TaskState.Gone, TaskState.GoneByOperator, TaskState.Unknown,
    }.ToFrozenSet();

    private static readonly FrozenDictionary<TaskState, FrozenSet<TaskState>> Allowed = BuildTable();

    private static FrozenDictionary<TaskState, FrozenSet<TaskState>> BuildTable()
    {
        var ends = Terminal.ToArray();
        return new Dictionary<TaskState, FrozenSet<TaskState>>
        {
            // A run that was never launched can only be staged, or end without touching an engine.
            [TaskState.WaitingOnOffers] = new[] { TaskState.Staging, TaskState.Killed, TaskState.Error }.ToFrozenSet(),
            [TaskState.Staging] = ends.Concat([TaskState.Starting, TaskState.Running, TaskState.Killing, TaskState.Unreachable]).ToFrozenSet(),
            [TaskState.Starting] = ends.Concat([TaskState.Running, TaskState.Killing, TaskState.Unreachable]).ToFrozenSet(),
            [TaskState.Running] = ends.Concat([TaskState.Killing, TaskState.Unreachable]).ToFrozenSet(),
            // Once a kill is asked for, the run only waits for its end; a late RUNNING cannot undo the kill.
            [TaskState.Killing] = ends.ToFrozenSet(),
            // An unreachable agent may come back with the task still running.
            [TaskState.Unreachable] = ends.Concat([TaskState.Running, TaskState.Killing]).ToFrozenSet(),
        }.ToFrozenDictionary();
    }

    public static string ToWire(this TaskState state) => Names[state];

    public static bool TryParse(string? name, out TaskState state) =>
        ByName.TryGetValue(name ?? string.Empty, out state);

    public static TaskState Parse(string name) =>
        TryParse(name, out var state) ? state : throw new FormatException($"unknown task state '{name}'");

    public static bool IsTerminal(this TaskState state) => Terminal.Contains(state);

    public static bool IsActive(this TaskState state) => Active.Contains(state);

    public static bool CanTransition(TaskState from, TaskState to) =>
        Allowed.TryGetValue(from, out var next) && next.Contains(to);

    /// <summary>Every state a run may be in just before it reaches <paramref name="to"/>.</summary>
    public static IReadOnlyList<TaskState> Predecessors(TaskState to) =>
        Allowed.Where(pair => pair.Value.Contains(to)).Select(pair => pair.Key).ToArray();

    public static IEnumerable<string> WireNames => Names.Values;
}
