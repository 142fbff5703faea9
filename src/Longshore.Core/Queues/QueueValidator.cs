using Longshore.Core.Tasks;

namespace Longshore.Core.Queues;

/// <summary>Checks a queue definition: its task template, its queue block and its type's settings, naming every failing field.</summary>
public static class QueueValidator
{
    public static IReadOnlyList<string> Validate(TaskDefinition template, QueueBlock? block, IReadOnlyDictionary<string, IQueueSource> sources, TaskLimits limits)
    {
        var errors = TaskDefinitionValidator.Validate(template, limits).ToList();
        if (block is null)
        {
            errors.Add("queue: is required (queue.type names the source: " + string.Join(", ", sources.Keys.Order()) + ")");
            return errors;
        }

        if (block.Type is null || !sources.TryGetValue(block.Type, out var source))
        {
            errors.Add($"queue.type: must be one of {string.Join(", ", sources.Keys.Order())}, got '{block.Type}'");
            source = null;
        }

        if (block.MaxConcurrent is < 1 or > 100_000)
            errors.Add($"queue.max_concurrent: must be between 1 and 100000, got {block.MaxConcurrent}");
        if (block.BatchSize is < 1 or > 10_000)
            errors.Add($"queue.batch_size: must be between 1 and 10000, got {block.BatchSize}");
        if (block.BatchSeparator is null || block.BatchSeparator.Length > 64)
            errors.Add("queue.batch_separator: must be a string of at most 64 characters");
        if (double.IsNaN(block.FrequencySeconds) || block.FrequencySeconds is < 1 or > 86_400)
            errors.Add($"queue.frequency_seconds: must be between 1 and 86400, got {block.FrequencySeconds}");
        if (block.Status is not ("ENABLED" or "DISABLED"))
            errors.Add($"queue.status: must be one of ENABLED, DISABLED, got '{block.Status}'");
        if (block.AckMode is not ("on_success" or "on_create"))
            errors.Add($"queue.ack_mode: must be one of on_success, on_create, got '{block.AckMode}'");
        if (block.Name is { Length: > 200 })
            errors.Add("queue.name: must be at most 200 characters");
        if (source is not null)
        {
            var settings = source.Type.SettingsOf(block);
            foreach (var input in source.Type.Inputs.Where(i => i.Needed && string.IsNullOrEmpty(settings.GetValueOrDefault(i.Name))))
                errors.Add($"queue.{source.Type.Namespace}.{input.Name}: is required ({input.Label})");
            errors.AddRange(source.Validate(settings));
        }

        return errors;
    }
}
