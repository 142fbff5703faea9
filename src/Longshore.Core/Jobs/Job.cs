using Longshore.Core.Tasks;

namespace Longshore.Core.Jobs;

public enum JobState
{
    Running,
    Stopped,
}

/// <summary>A job as stored: its current definition, whether it is wanted, and the generation of its containers.</summary>
public sealed record Job
{
    public required string Id { get; init; }

    public required JobDefinition Definition { get; init; }

    public JobState State { get; init; } = JobState.Running;

    /// <summary>Raised on every change of a group's container; replicas of older generations are rolled over.</summary>
    public int Generation { get; init; } = 1;

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; init; }

    public long Version { get; init; }
}

/// <summary>Turns a job group into the task definition each of its replicas runs.</summary>
public static class JobReplicas
{
    public const double DefaultCpu = 1;
    public const double DefaultMemory = 128;

    /// <summary>The family id shared by a group's replicas: <c>&lt;job&gt;-&lt;role&gt;-&lt;environment&gt;</c>.</summary>
    public static string GroupKey(string jobId, JobGroup group) => $"{jobId}-{group.Role}-{group.Environment}";

    /// <summary><c>&lt;job&gt;-&lt;role&gt;-&lt;environment&gt;-&lt;timestamp&gt;-&lt;uuid&gt;</c>, the taurus task name.</summary>
    public static string NewMesosId(string jobId, JobGroup group, DateTimeOffset now, Guid uuid) =>
        $"{GroupKey(jobId, group)}-{now.ToUnixTimeMilliseconds()}-{uuid:N}";

    public static TaskDefinition ToTaskDefinition(string jobId, JobGroup group)
    {
        var container = group.Container!;
        var resources = group.Resources ?? new JobResources();
        return new TaskDefinition
        {
            Id = GroupKey(jobId, group),
            Container = new ContainerSpec
            {
                Docker = new DockerSpec { Image = container.Image, Network = container.Network },
                Volumes = container.Volumes?.Select(v => new VolumeSpec { HostPath = v.HostPath, ContainerPath = v.ContainerPath, Mode = v.Mode }).ToList(),
            },
            Cmd = ShellCommand(container.Command),
            Env = container.Env,
            Mem = resources.Memory > 0 ? resources.Memory : DefaultMemory,
            Cpus = resources.Cpu > 0 ? resources.Cpu : DefaultCpu,
            Constraints = string.IsNullOrEmpty(group.Cluster) ? null : [["cluster", "EQUAL", group.Cluster]],
            // Replacement is the job's business, not the retry policy's.
            TaskRetries = 0,
            SystemRetries = 0,
            MaxConcurrent = 10000,
        };
    }

    /// <summary>One element is a command line; several are an argv, each quoted so the shell passes it unchanged.</summary>
    public static string? ShellCommand(List<string>? command) => command switch
    {
        null or [] => null,
        [var line] => line,
        _ => "exec " + string.Join(' ', command.Select(arg => "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'")),
    };
}
