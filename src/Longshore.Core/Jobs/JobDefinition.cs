namespace Longshore.Core.Jobs;

/// <summary>
/// A replicated job as the taurus API defines it: task groups, each kept at <c>replicas</c> running containers
/// until the job is deleted. snake_case on the wire.
/// </summary>
public sealed record JobDefinition
{
    public string? Id { get; init; }

    public List<JobGroup>? Tasks { get; init; }
}

public sealed record JobGroup
{
    /// <summary>Cluster the group runs in; on Mesos it becomes the constraint <c>["cluster", "EQUAL", cluster]</c>.</summary>
    public string? Cluster { get; init; }

    public string? Environment { get; init; }

    public string? Role { get; init; }

    public JobContainer? Container { get; init; }

    public JobResources? Resources { get; init; }

    /// <summary>Containers kept running (0..1000). Default 1.</summary>
    public int Replicas { get; init; } = 1;

    /// <summary>Optional check; a replica failing it <c>failures</c> times in a row is killed and replaced.</summary>
    public HealthCheck? HealthCheck { get; init; }
}

public sealed record JobContainer
{
    public string? Image { get; init; }

    /// <summary>One element: a shell command line. Several: an argument vector, passed through unchanged.</summary>
    public List<string>? Command { get; init; }

    public List<JobVolume>? Volumes { get; init; }

    /// <summary>BRIDGE (default) or HOST (needed for HTTP health checks, which probe 127.0.0.1).</summary>
    public string Network { get; init; } = "BRIDGE";

    public Dictionary<string, string>? Env { get; init; }
}

public sealed record JobVolume
{
    public string? ContainerPath { get; init; }

    public string? HostPath { get; init; }

    public string Mode { get; init; } = "RW";
}

/// <summary>CPU cores and memory in MB; a missing or 0 value takes its default (1 core, 128 MB), each on its own.</summary>
public sealed record JobResources
{
    public double Cpu { get; init; }

    public double Memory { get; init; }
}

public sealed record HealthCheck
{
    /// <summary><c>command</c> (run inside the container, healthy on exit 0) or <c>http</c> (GET on 127.0.0.1, healthy on 2xx/3xx).</summary>
    public string? Type { get; init; }

    public List<string>? Command { get; init; }

    public int Port { get; init; }

    public string Path { get; init; } = "/";

    public double IntervalSeconds { get; init; } = 10;

    public double TimeoutSeconds { get; init; } = 5;

    /// <summary>Consecutive failures that get a replica replaced. Default 3.</summary>
    public int Failures { get; init; } = 3;

    /// <summary>Seconds after start before the first check. Default 0.</summary>
    public double GraceSeconds { get; init; }
}
