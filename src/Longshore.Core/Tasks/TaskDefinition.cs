using System.Text.Json.Serialization;

namespace Longshore.Core.Tasks;

/// <summary>
/// A task as the Hippo API defines it. Property names are snake_case on the wire, except the volume fields,
/// which Hippo spells in camelCase. Defaults apply to fields left out of a request.
/// </summary>
public sealed record TaskDefinition
{
    /// <summary>Family id: every run and retry of this task shares it, and <c>max_concurrent</c> counts by it.</summary>
    public string? Id { get; init; }

    public ContainerSpec? Container { get; init; }

    /// <summary>Memory limit in MB (4..64000). Default 128.</summary>
    public double Mem { get; init; } = 128;

    /// <summary>CPU share as a number of cores (0.01..12). Default 1.</summary>
    public double Cpus { get; init; } = 1;

    /// <summary>
    /// Host ports the task needs (0..16). The engine picks them (on Mesos, from the agent's offered <c>ports</c>) and gives
    /// them to the task as <c>PORT0</c>, <c>PORT1</c>, … (and <c>PORT</c>, <c>PORTS</c>); on the BRIDGE network each is
    /// also published to the same port number inside the container. Default 0.
    /// </summary>
    public int Ports { get; init; }

    /// <summary>Shell command, run as <c>sh -c cmd</c>; absent runs the image's own command.</summary>
    public string? Cmd { get; init; }

    /// <summary>Environment variables. Values may arrive as numbers or true/false; as Hippo does, they are kept as text.</summary>
    [JsonConverter(typeof(EnvJsonConverter))]
    public Dictionary<string, string>? Env { get; init; }

    /// <summary>Marathon-style <c>[attribute, operator, value]</c> placement rules (used by cluster engines).</summary>
    public List<List<string>>? Constraints { get; init; }

    /// <summary>Retries after TASK_FAILED (0..100). Default 0.</summary>
    public int TaskRetries { get; init; }

    /// <summary>Retries after a system fault such as TASK_LOST or TASK_ERROR (0..100). Default 2.</summary>
    public int SystemRetries { get; init; } = 2;

    /// <summary>Most runs of this family id active at once (1..10000). Default 10.</summary>
    public int MaxConcurrent { get; init; } = 10;
}

public sealed record ContainerSpec
{
    /// <summary>DOCKER (the only type the local engine runs).</summary>
    public string Type { get; init; } = "DOCKER";

    public DockerSpec? Docker { get; init; }

    public List<VolumeSpec>? Volumes { get; init; }
}

public sealed record DockerSpec
{
    public string? Image { get; init; }

    /// <summary>BRIDGE (default) or HOST.</summary>
    public string Network { get; init; } = "BRIDGE";

    public bool ForcePullImage { get; init; }
}

public sealed record VolumeSpec
{
    [JsonPropertyName("hostPath")]
    public string? HostPath { get; init; }

    [JsonPropertyName("containerPath")]
    public string? ContainerPath { get; init; }

    /// <summary>RO or RW (default).</summary>
    public string Mode { get; init; } = "RW";
}
