namespace Longshore.Core.Tasks;

/// <summary>Backoff between the attempts of one task family. Defaults: 1 s doubling, capped at 5 min.</summary>
public sealed record RetryOptions
{
    public TimeSpan BackoffBase { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan BackoffCap { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>
/// Decides whether a run that ended gets another attempt: TASK_FAILED spends <c>task_retries</c>, a system fault
/// spends <c>system_retries</c>, a kill or a success ends the family.
/// </summary>
public sealed class RetryPolicy(RetryOptions options, Func<double> random)
{
    public RetryOptions Options { get; } = options;

    /// <summary>The next run to record with the end of <paramref name="run"/>, or null when none is owed.</summary>
    public TaskRun? NextAttempt(TaskRun run, TaskState endState, Guid uuid, DateTimeOffset now)
    {
        int taskLeft = run.TaskRetriesLeft, systemLeft = run.SystemRetriesLeft;
        if (endState == TaskState.Failed && taskLeft > 0)
            taskLeft--;
        else if (TaskStates.SystemFaults.Contains(endState) && systemLeft > 0)
            systemLeft--;
        else
            return null;

        return run with
        {
            MesosId = TaskRun.NewMesosId(run.FamilyId, uuid),
            Attempt = run.Attempt + 1,
            State = TaskState.WaitingOnOffers,
            TaskRetriesLeft = taskLeft,
            SystemRetriesLeft = systemLeft,
            NotBefore = now + Backoff(run.Attempt),
            CreatedAt = now,
            UpdatedAt = now,
            StagedAt = null,
            StartedAt = null,
            FinishedAt = null,
            ExitCode = null,
            Reason = null,
            Agent = null,
            ContainerId = null,
            RetryOf = run.MesosId,
            RetriedAs = null,
            Seq = 0,
        };
    }

    /// <summary>
    /// Exponential backoff after the given attempt, with "equal jitter": half fixed, half random, so retries of many
    /// runs that failed together spread out but never come sooner than half the nominal delay.
    /// </summary>
    public TimeSpan Backoff(int failedAttempt)
    {
        var exponent = Math.Clamp(failedAttempt - 1, 0, 30);
        var nominal = Math.Min(Options.BackoffCap.TotalMilliseconds, Options.BackoffBase.TotalMilliseconds * Math.Pow(2, exponent));
        return TimeSpan.FromMilliseconds((nominal / 2) + (nominal / 2 * random()));
    }
}
