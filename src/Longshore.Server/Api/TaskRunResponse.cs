using Longshore.Core.Tasks;

namespace Longshore.Server.Api;

/// <summary>A run as the Hippo API shows it: the task definition's fields and the run's Mesos-style state.</summary>
public sealed record TaskRunResponse
{
    public required string Id { get; init; }
    public required string MesosId { get; init; }
    public required string MesosState { get; init; }
    public string? MesosAgent { get; init; }
    public int Attempt { get; init; }
    public ContainerSpec? Container { get; init; }
    public double Mem { get; init; }
    public double Cpus { get; init; }
    public int Ports { get; init; }
    public string? Cmd { get; init; }
    public Dictionary<string, string>? Env { get; init; }
    public List<List<string>>? Constraints { get; init; }
    public int TaskRetries { get; init; }
    public int SystemRetries { get; init; }
    public int MaxConcurrent { get; init; }
    public int TaskRetriesRemaining { get; init; }
    public int SystemRetriesRemaining { get; init; }
    public int? ExitCode { get; init; }
    public string? Reason { get; init; }
    public string? ContainerId { get; init; }
    public string? RetryOf { get; init; }
    public string? RetriedAs { get; init; }

    /// <summary>Creation time in Unix seconds.</summary>
    public long Tstamp { get; init; }

    /// <summary>Hippo's <c>status_tstamp</c>: when the run last changed state (or was created), in Unix seconds with milliseconds.</summary>
    public double StatusTstamp { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? NotBefore { get; init; }
    public DateTimeOffset? StagedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }

    public static TaskRunResponse From(TaskRun run) => new()
    {
        Id = run.FamilyId,
        MesosId = run.MesosId,
        MesosState = run.State.ToWire(),
        MesosAgent = run.Agent,
        Attempt = run.Attempt,
        Container = run.Definition.Container,
        Mem = run.Definition.Mem,
        Cpus = run.Definition.Cpus,
        Ports = run.Definition.Ports,
        Cmd = run.Definition.Cmd,
        Env = run.Definition.Env,
        Constraints = run.Definition.Constraints,
        TaskRetries = run.Definition.TaskRetries,
        SystemRetries = run.Definition.SystemRetries,
        MaxConcurrent = run.Definition.MaxConcurrent,
        TaskRetriesRemaining = run.TaskRetriesLeft,
        SystemRetriesRemaining = run.SystemRetriesLeft,
        ExitCode = run.ExitCode,
        Reason = run.Reason,
        ContainerId = run.ContainerId,
        RetryOf = run.RetryOf,
        RetriedAs = run.RetriedAs,
        Tstamp = run.CreatedAt.ToUnixTimeSeconds(),
        StatusTstamp = run.UpdatedAt.ToUnixTimeMilliseconds() / 1000.0,
        CreatedAt = run.CreatedAt,
        NotBefore = run.State == TaskState.WaitingOnOffers ? run.NotBefore : null,
        StagedAt = run.StagedAt,
        StartedAt = run.StartedAt,
        FinishedAt = run.FinishedAt,
    };
}

public sealed record CreatedTaskResponse(string MesosId);

/// <summary>Hippo's answer to a kill: <c>{"killed": mesos_id}</c>.</summary>
public sealed record KilledTaskResponse(string Killed);

/// <summary>Hippo's answer to a delete: <c>{"deleted": mesos_id}</c>.</summary>
public sealed record DeletedTaskResponse(string Deleted);

public sealed record LogsResponse(string MesosId, string MesosState, string Stdout, string Stderr, bool Truncated);
