namespace Longshore.Core.Tasks;

/// <summary>
/// One attempt at running a task definition. A retry is a new run of the same family with its own
/// <see cref="MesosId"/>; <see cref="RetryOf"/> and <see cref="RetriedAs"/> link the attempts.
/// </summary>
public sealed record TaskRun
{
    /// <summary><c>&lt;family id&gt;.&lt;uuid&gt;</c>: the run's id in the API and on every engine.</summary>
    public required string MesosId { get; init; }

    public required string FamilyId { get; init; }

    /// <summary>1 for the first run of a task, one more for each retry.</summary>
    public int Attempt { get; init; } = 1;

    public required TaskDefinition Definition { get; init; }

    public TaskState State { get; init; } = TaskState.WaitingOnOffers;

    public int TaskRetriesLeft { get; init; }

    public int SystemRetriesLeft { get; init; }

    /// <summary>Earliest time the run may be launched (retry backoff).</summary>
    public DateTimeOffset NotBefore { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? StagedAt { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; init; }

    public int? ExitCode { get; init; }

    public string? Reason { get; init; }

    /// <summary>Where the run is placed: the host or Mesos agent.</summary>
    public string? Agent { get; init; }

    /// <summary>The engine's own id for the run's container or task.</summary>
    public string? ContainerId { get; init; }

    public string? RetryOf { get; init; }

    public string? RetriedAs { get; init; }

    /// <summary>The replicated job this run is a replica of; null for one-off tasks.</summary>
    public string? JobId { get; init; }

    /// <summary>Index of the job's task group.</summary>
    public int? JobGroup { get; init; }

    /// <summary>The job generation whose container this replica runs.</summary>
    public int? Generation { get; init; }

    /// <summary>The queue whose messages this run was made from; null otherwise. Retries keep it.</summary>
    public string? QueueId { get; init; }

    /// <summary>The message batch this run (and its retries) carries; settled with the source when the chain ends.</summary>
    public string? MessageKey { get; init; }

    /// <summary>Store order of creation; paging walks it.</summary>
    public long Seq { get; init; }

    public static string NewMesosId(string familyId, Guid uuid) => $"{familyId}.{uuid:D}";

    /// <summary>A first run for a freshly submitted definition.</summary>
    public static TaskRun CreateFirst(TaskDefinition definition, Guid uuid, DateTimeOffset now)
    {
        var family = definition.Id ?? throw new ArgumentException("definition has no id", nameof(definition));
        return new TaskRun
        {
            MesosId = NewMesosId(family, uuid),
            FamilyId = family,
            Definition = definition,
            TaskRetriesLeft = definition.TaskRetries,
            SystemRetriesLeft = definition.SystemRetries,
            NotBefore = now,
            CreatedAt = now,
            UpdatedAt = now,
        };
    }
}
