using System.Globalization;
using System.Text.RegularExpressions;
using Longshore.Core.Tasks;

namespace Longshore.Core.Jobs;

/// <summary>Checks a job and names every failing field (as <c>tasks[i].…</c>) with its rule.</summary>
public static partial class JobValidator
{
    public const int MaxGroups = 50;
    public const int MaxReplicas = 1000;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]*\\z")]
    private static partial Regex NamePattern();

    // Task-definition field names as a job spells them.
    private static readonly (string Task, string Job)[] FieldNames =
    [
        ("container.docker.image", "container.image"),
        ("container.docker.network", "container.network"),
        ("container.volumes", "container.volumes"),
        ("hostPath", "host_path"),
        ("containerPath", "container_path"),
        ("mem", "resources.memory"),
        ("cpus", "resources.cpu"),
        ("env", "container.env"),
        ("cmd", "container.command"),
    ];

    public static IReadOnlyList<string> Validate(JobDefinition job, TaskLimits limits)
    {
        var errors = new List<string>();
        if (string.IsNullOrEmpty(job.Id))
            errors.Add("id: is required");
        else if (job.Id.Length > 60 || !NamePattern().IsMatch(job.Id))
            errors.Add("id: must be 1 to 60 characters of letters, digits, '_', '.' or '-', starting with a letter or digit");

        if (job.Tasks is null || job.Tasks.Count == 0)
        {
            errors.Add("tasks: must list at least one task group");
            return errors;
        }

        if (job.Tasks.Count > MaxGroups)
            errors.Add($"tasks: at most {MaxGroups} task groups");
        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Math.Min(job.Tasks.Count, MaxGroups); i++)
        {
            var group = job.Tasks[i];
            var field = $"tasks[{i}]";
            if (group is null)
            {
                errors.Add($"{field}: must be an object");
                continue;
            }

            Name(errors, $"{field}.role", group.Role);
            Name(errors, $"{field}.environment", group.Environment);
            if (!keys.Add($"{group.Role}\n{group.Environment}"))
                errors.Add($"{field}: another task group already has role '{group.Role}' and environment '{group.Environment}'");
            if (group.Replicas is < 0 or > MaxReplicas)
                errors.Add($"{field}.replicas: must be between 0 and {MaxReplicas}, got {group.Replicas}");
            if (group.Resources is { } resources)
            {
                if (resources.Cpu != 0 && (resources.Cpu < 0.01 || resources.Cpu > 12))
                    errors.Add(string.Create(CultureInfo.InvariantCulture, $"{field}.resources.cpu: must be 0 (default 1) or between 0.01 and 12, got {resources.Cpu}"));
                if (resources.Memory != 0 && (resources.Memory < 4 || resources.Memory > 64000))
                    errors.Add(string.Create(CultureInfo.InvariantCulture, $"{field}.resources.memory: must be 0 (default 128) or between 4 and 64000 MB, got {resources.Memory}"));
            }

            if (group.Container is null)
            {
                errors.Add($"{field}.container: is required (container.image names the image to run)");
                continue;
            }

            if (group.Container.Command is { Count: > 256 })
                errors.Add($"{field}.container.command: at most 256 elements");
            if (group.Container.Command?.Any(arg => arg is null) == true)
                errors.Add($"{field}.container.command: elements must be strings");
            if (job.Id is not null && group.Role is not null && group.Environment is not null)
            {
                var definition = JobReplicas.ToTaskDefinition(job.Id, group);
                foreach (var error in TaskDefinitionValidator.Validate(definition, limits))
                {
                    // Resource defaults are the job's own rules, checked above.
                    if (error.StartsWith("mem:", StringComparison.Ordinal) || error.StartsWith("cpus:", StringComparison.Ordinal))
                        continue;
                    errors.Add(error.StartsWith("id:", StringComparison.Ordinal)
                        ? $"{field}: the job id, role and environment joined by '-' must be at most {TaskDefinitionValidator.MaxIdLength} characters"
                        : $"{field}.{Rename(error)}");
                }
            }

            ValidateHealthCheck(errors, $"{field}.health_check", group.HealthCheck, group.Container.Network);
        }

        return errors;
    }

    private static void ValidateHealthCheck(List<string> errors, string field, HealthCheck? check, string network)
    {
        if (check is null)
            return;
        switch (check.Type)
        {
            case "command":
                if (check.Command is null || check.Command.Count == 0 || check.Command.Any(string.IsNullOrEmpty))
                    errors.Add($"{field}.command: must list the command to run, e.g. [\"test\", \"-f\", \"/tmp/ready\"]");
                break;
            case "http":
                if (check.Port is < 1 or > 65535)
                    errors.Add($"{field}.port: must be between 1 and 65535, got {check.Port}");
                if (string.IsNullOrEmpty(check.Path) || !check.Path.StartsWith('/'))
                    errors.Add($"{field}.path: must start with '/'");
                if (network != "HOST")
                    errors.Add($"{field}.type: http checks probe 127.0.0.1 and need container.network HOST");
                break;
            default:
                errors.Add($"{field}.type: must be one of command, http, got '{check.Type}'");
                break;
        }

        if (check.IntervalSeconds is < 1 or > 3600)
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{field}.interval_seconds: must be between 1 and 3600, got {check.IntervalSeconds}"));
        if (check.TimeoutSeconds is < 0.1 or > 600)
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{field}.timeout_seconds: must be between 0.1 and 600, got {check.TimeoutSeconds}"));
        if (check.Failures is < 1 or > 100)
            errors.Add($"{field}.failures: must be between 1 and 100, got {check.Failures}");
        if (check.GraceSeconds is < 0 or > 3600)
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{field}.grace_seconds: must be between 0 and 3600, got {check.GraceSeconds}"));
    }

    private static void Name(List<string> errors, string field, string? value)
    {
        if (string.IsNullOrEmpty(value))
            errors.Add($"{field}: is required");
        else if (value.Length > 30 || !NamePattern().IsMatch(value))
            errors.Add($"{field}: must be 1 to 30 characters of letters, digits, '_', '.' or '-', starting with a letter or digit");
    }

    private static string Rename(string error)
    {
        var colon = error.IndexOf(": ", StringComparison.Ordinal);
        var (field, rest) = colon < 0 ? (error, string.Empty) : (error[..colon], error[colon..]);
        foreach (var (task, job) in FieldNames)
        {
            if (field.StartsWith(task, StringComparison.Ordinal) || field.Contains("." + task, StringComparison.Ordinal))
                field = field.Replace(task, job, StringComparison.Ordinal);
        }

        return field + rest;
    }
}
