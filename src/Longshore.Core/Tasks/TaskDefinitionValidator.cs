using System.Globalization;
using System.Text.RegularExpressions;

namespace Longshore.Core.Tasks;

/// <summary>
/// Checks a definition and names every failing field with its rule, so a client can fix all of them at once.
/// </summary>
public static partial class TaskDefinitionValidator
{
    public const int MaxIdLength = 100;
    public const int MaxCmdLength = 256 * 1024;
    public const int MaxEnvEntries = 256;
    public const int MaxEnvValueLength = 128 * 1024;
    public const int MaxVolumes = 32;
    public const int MaxConstraints = 32;

    public static readonly string[] Networks = ["BRIDGE", "HOST"];
    public static readonly string[] VolumeModes = ["RO", "RW"];
    public static readonly string[] ContainerTypes = ["DOCKER"];
    public static readonly string[] ConstraintOperators = ["EQUAL", "CLUSTER", "LIKE", "UNLIKE", "UNIQUE", "GROUP_BY", "MAX_PER", "UNEQUAL"];

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]*\\z")]
    private static partial Regex IdPattern();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*\\z")]
    private static partial Regex EnvNamePattern();

    public static IReadOnlyList<string> Validate(TaskDefinition definition, TaskLimits limits)
    {
        var errors = new List<string>();
        ValidateId(definition.Id, errors);
        ValidateContainer(definition.Container, limits, errors);
        Range(errors, "mem", definition.Mem, 4, 64000, "MB");
        Range(errors, "cpus", definition.Cpus, 0.01, 12, "cores");
        Range(errors, "task_retries", definition.TaskRetries, 0, 100, null);
        Range(errors, "system_retries", definition.SystemRetries, 0, 100, null);
        Range(errors, "max_concurrent", definition.MaxConcurrent, 1, 10000, null);
        Range(errors, "ports", definition.Ports, 0, TaskPorts.Max, null);
        if (definition.Cmd is { } cmd)
        {
            if (cmd.Length > MaxCmdLength)
                errors.Add($"cmd: must be at most {MaxCmdLength} characters");
            if (cmd.Contains('\0', StringComparison.Ordinal))
                errors.Add("cmd: must not contain a NUL character");
        }

        ValidateEnv(definition.Env, errors);
        var before = errors.Count;
        ValidateConstraints(definition.Constraints, errors);
        if (errors.Count == before && limits.Engine is { } engine)
            errors.AddRange(engine.Check(definition));
        return errors;
    }

    private static void ValidateId(string? id, List<string> errors)
    {
        if (string.IsNullOrEmpty(id))
            errors.Add("id: is required");
        else if (id.Length > MaxIdLength || !IdPattern().IsMatch(id))
            errors.Add($"id: must be 1 to {MaxIdLength} characters of letters, digits, '_', '.' or '-', starting with a letter or digit");
    }

    private static void ValidateContainer(ContainerSpec? container, TaskLimits limits, List<string> errors)
    {
        if (container is null)
        {
            errors.Add("container: is required (container.docker.image names the image to run)");
            return;
        }

        OneOf(errors, "container.type", container.Type, ContainerTypes);
        if (container.Docker is null)
        {
            errors.Add("container.docker: is required");
        }
        else
        {
            var image = container.Docker.Image;
            if (string.IsNullOrWhiteSpace(image))
                errors.Add("container.docker.image: is required");
            else if (image.Length > 512 || image.Any(char.IsWhiteSpace))
                errors.Add("container.docker.image: must be an image reference of at most 512 characters without spaces");
            OneOf(errors, "container.docker.network", container.Docker.Network, Networks);
        }

        var volumes = container.Volumes ?? [];
        if (volumes.Count > MaxVolumes)
            errors.Add($"container.volumes: at most {MaxVolumes} volumes");
        for (var i = 0; i < Math.Min(volumes.Count, MaxVolumes); i++)
            ValidateVolume(volumes[i], $"container.volumes[{i}]", limits, errors);
    }

    private static void ValidateVolume(VolumeSpec? volume, string field, TaskLimits limits, List<string> errors)
    {
        if (volume is null)
        {
            errors.Add($"{field}: must be an object");
            return;
        }

        OneOf(errors, $"{field}.mode", volume.Mode, VolumeModes);
        if (!IsAbsolutePath(volume.ContainerPath))
            errors.Add($"{field}.containerPath: must be an absolute path");
        if (!IsAbsolutePath(volume.HostPath))
        {
            errors.Add($"{field}.hostPath: must be an absolute path");
            return;
        }

        if (!IsAllowedHostPath(volume.HostPath!, limits.AllowedHostPaths))
        {
            var allowed = limits.AllowedHostPaths.Count == 0
                ? "no host paths are allowed on this server (see --allow-host-path)"
                : "allowed: " + string.Join(", ", limits.AllowedHostPaths) + " and below";
            errors.Add($"{field}.hostPath: '{volume.HostPath}' is outside the allowed host paths; {allowed}");
        }
    }

    private static bool IsAbsolutePath(string? path) =>
        !string.IsNullOrEmpty(path) && path.StartsWith('/') && !path.Contains('\0', StringComparison.Ordinal)
        && !path.Contains(':', StringComparison.Ordinal) && path.Length <= 4096;

    /// <summary>True when the normalized path is one of the allowed folders or inside one.</summary>
    public static bool IsAllowedHostPath(string hostPath, IReadOnlyList<string> allowed)
    {
        var full = Path.GetFullPath(hostPath).TrimEnd('/');
        foreach (var root in allowed)
        {
            var normalizedRoot = Path.GetFullPath(root).TrimEnd('/');
            if (normalizedRoot.Length == 0 || full == normalizedRoot || full.StartsWith(normalizedRoot + "/", StringComparison.Ordinal))
                return true;
        }

        return false;
    }

    private static void ValidateEnv(Dictionary<string, string>? env, List<string> errors)
    {
        if (env is null)
            return;
        if (env.Count > MaxEnvEntries)
            errors.Add($"env: at most {MaxEnvEntries} variables");
        foreach (var (name, value) in env.Take(MaxEnvEntries))
        {
            if (!EnvNamePattern().IsMatch(name) || name.Length > 256)
                errors.Add($"env.{Truncate(name)}: variable names must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)");
            if (value is null)
                errors.Add($"env.{Truncate(name)}: must be a string");
            else if (value.Length > MaxEnvValueLength || value.Contains('\0', StringComparison.Ordinal))
                errors.Add($"env.{Truncate(name)}: must be at most {MaxEnvValueLength} characters with no NUL character");
        }
    }

    private static void ValidateConstraints(List<List<string>>? constraints, List<string> errors)
    {
        if (constraints is null)
            return;
        if (constraints.Count > MaxConstraints)
            errors.Add($"constraints: at most {MaxConstraints} constraints");
        for (var i = 0; i < Math.Min(constraints.Count, MaxConstraints); i++)
        {
            var c = constraints[i];
            if (c is null || c.Count is < 2 or > 3 || c.Any(string.IsNullOrEmpty))
            {
                errors.Add($"constraints[{i}]: must be [attribute, operator] or [attribute, operator, value] of non-empty strings");
                continue;
            }

            OneOf(errors, $"constraints[{i}][1]", c[1], ConstraintOperators);
            var needsValue = c[1] is not ("UNIQUE" or "CLUSTER" or "GROUP_BY");
            if (needsValue && c.Count != 3)
                errors.Add($"constraints[{i}]: operator {c[1]} needs a value");
            if (c[1] is "LIKE" or "UNLIKE" && c.Count == 3 && !IsRegex(c[2]))
                errors.Add($"constraints[{i}][2]: must be a valid regular expression");
            if (c[1] is "MAX_PER" or "GROUP_BY" && c.Count == 3 && !int.TryParse(c[2], NumberStyles.None, CultureInfo.InvariantCulture, out _))
                errors.Add($"constraints[{i}][2]: must be a whole number for {c[1]}");
        }
    }

    private static bool IsRegex(string pattern)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromMilliseconds(100));
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static void Range(List<string> errors, string field, double value, double min, double max, string? unit)
    {
        if (double.IsNaN(value) || value < min || value > max)
        {
            var suffix = unit is null ? string.Empty : " " + unit;
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{field}: must be between {min} and {max}{suffix}, got {value}"));
        }
    }

    private static void OneOf(List<string> errors, string field, string? value, string[] allowed)
    {
        if (value is null || !allowed.Contains(value, StringComparer.Ordinal))
            errors.Add($"{field}: must be one of {string.Join(", ", allowed)}, got {(value is null ? "null" : "'" + Truncate(value) + "'")}");
    }

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "…";
}
