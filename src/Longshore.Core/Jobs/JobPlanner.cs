using Longshore.Core.Tasks;

namespace Longshore.Core.Jobs;

/// <summary>What the planner asks for: a new replica of a group, or a replica to kill.</summary>
public abstract record JobAction;

/// <param name="Replaces">The ended replica this one takes over from (its crash history sets the backoff).</param>
public sealed record LaunchReplica(int Group, TaskRun? Replaces, int Attempt, TimeSpan Delay) : JobAction;

public sealed record KillReplica(string MesosId, string Reason) : JobAction;

/// <summary>
/// Decides, from a job and the runs of its replicas, what brings it to its declared shape. Pure: the reconciler
/// reads the snapshot and applies the actions.
/// </summary>
public static class JobPlanner
{
    /// <param name="runs">The job's active runs and its recently ended ones.</param>
    /// <param name="stableAfter">A replica that ran this long before ending is not crash-looping: its replacement starts at once.</param>
    /// <param name="backoff">Delay before the given retry (1 for the first quick crash, …).</param>
    public static IReadOnlyList<JobAction> Plan(Job job, IReadOnlyList<TaskRun> runs, TimeSpan stableAfter, Func<int, TimeSpan> backoff)
    {
        var actions = new List<JobAction>();
        var groups = job.Definition.Tasks ?? [];
        foreach (var orphan in runs.Where(run => IsLive(run) && (run.JobGroup is null || run.JobGroup >= groups.Count)))
            actions.Add(new KillReplica(orphan.MesosId, "its task group was removed from the job"));

        for (var index = 0; index < groups.Count; index++)
        {
            var desired = job.State == JobState.Stopped ? 0 : groups[index].Replicas;
            var live = runs.Where(run => run.JobGroup == index && IsLive(run)).OrderBy(run => run.Seq).ToList();
            if (desired == 0)
            {
                actions.AddRange(live.Select(run => new KillReplica(run.MesosId, job.State == JobState.Stopped ? "job deleted" : "scaled down")));
                continue;
            }

            var current = live.Where(run => run.Generation == job.Generation).ToList();
            var old = live.Where(run => run.Generation != job.Generation).ToList();
            if (old.Count > 0)
                PlanRollover(actions, runs, index, desired, current, old, stableAfter, backoff);
            else if (live.Count > desired)
                actions.AddRange(live.OrderByDescending(run => run.Seq).Take(live.Count - desired).Select(run => new KillReplica(run.MesosId, "scaled down")));
            else if (live.Count < desired)
                PlanReplacements(actions, runs, index, desired - live.Count, stableAfter, backoff);
        }

        return actions;
    }

    /// <summary>
    /// A rolling replacement: one new replica at a time, and an old one is killed only once a new one runs, so the
    /// group never has fewer running than it had.
    /// </summary>
    private static void PlanRollover(List<JobAction> actions, IReadOnlyList<TaskRun> runs, int index, int desired, List<TaskRun> current, List<TaskRun> old,
        TimeSpan stableAfter, Func<int, TimeSpan> backoff)
    {
        // Old replicas not running yet would only be replaced later: drop them now.
        foreach (var waiting in old.Where(run => run.State != TaskState.Running))
            actions.Add(new KillReplica(waiting.MesosId, "replaced by a newer version of the job"));
        var oldRunning = old.Where(run => run.State == TaskState.Running).OrderByDescending(run => run.Seq).ToList();

        if (current.Count > desired)
            actions.AddRange(current.OrderByDescending(run => run.Seq).Take(current.Count - desired).Select(run => new KillReplica(run.MesosId, "scaled down")));
        var currentRunning = Math.Min(desired, current.Count(run => run.State == TaskState.Running));
        var surplus = currentRunning + oldRunning.Count - desired;
        actions.AddRange(oldRunning.Take(Math.Max(0, surplus)).Select(run => new KillReplica(run.MesosId, "replaced by a newer version of the job")));
        if (current.Count < desired && current.All(run => run.State == TaskState.Running))
            PlanReplacements(actions, runs, index, 1, stableAfter, backoff);
    }

    private static void PlanReplacements(List<JobAction> actions, IReadOnlyList<TaskRun> runs, int index, int missing, TimeSpan stableAfter, Func<int, TimeSpan> backoff)
    {
        var predecessors = runs
            .Where(run => run.JobGroup == index && run.State.IsTerminal() && run.RetriedAs is null)
            .OrderByDescending(run => run.Seq)
            .Take(missing)
            .ToList();
        for (var i = 0; i < missing; i++)
        {
            var previous = i < predecessors.Count ? predecessors[i] : null;
            var crashed = previous is not null && previous.State != TaskState.Killed && !RanLong(previous, stableAfter);
            var attempt = crashed ? previous!.Attempt + 1 : 1;
            actions.Add(new LaunchReplica(index, previous, attempt, crashed ? backoff(previous!.Attempt) : TimeSpan.Zero));
        }
    }

    private static bool RanLong(TaskRun run, TimeSpan stableAfter) =>
        run is { StartedAt: { } started, FinishedAt: { } finished } && finished - started >= stableAfter;

    /// <summary>Counted as a replica: not ended and not already being killed.</summary>
    public static bool IsLive(TaskRun run) => !run.State.IsTerminal() && run.State != TaskState.Killing;
}
