using System.Text.Json;
using System.Text.Json.Serialization;

namespace Longshore.Core.Queues;

/// <summary>
/// The <c>queue</c> block of a Hippo queue definition: how to poll, batch and cap it. The source's own settings sit
/// under the type's namespace, e.g. <c>"queue": {"type": "cron", "cron": {"cronstring": "*/5 * * * * *"}}</c>.
/// </summary>
public sealed record QueueBlock
{
    public string? Type { get; init; }

    public string? Name { get; init; }

    /// <summary>Most messages in flight (unfinished tasks × batch_size) for this queue (1..100000). Default 10000.</summary>
    public int MaxConcurrent { get; init; } = 10000;

    /// <summary>Messages per task (1..10000). Default 1.</summary>
    public int BatchSize { get; init; } = 1;

    /// <summary>Joins the payloads of a batch. Default "|".</summary>
    public string BatchSeparator { get; init; } = "|";

    /// <summary>Seconds between polls while the source is idle (1..86400). Default 60.</summary>
    public double FrequencySeconds { get; init; } = 60;

    /// <summary>Unix seconds of the last poll (read-only; set by Longshore).</summary>
    public long? LastRunTstamp { get; init; }

    /// <summary>Unix seconds of the last poll that made tasks (read-only; set by Longshore, as Hippo's).</summary>
    public long? LastTaskQueuedTstamp { get; init; }

    /// <summary>
    /// on_success (default): a message is settled when its task chain ends — acknowledged if it finished, released if
    /// it failed for good. on_create (Hippo's behaviour): acknowledged as soon as its task is durably recorded.
    /// </summary>
    public string AckMode { get; init; } = "on_success";

    /// <summary>ENABLED (default) or DISABLED.</summary>
    public string Status { get; init; } = "ENABLED";

    /// <summary>The settings of every type namespace given (only the queue's own type is used).</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Settings { get; init; }

    /// <summary>The settings object of this queue's type, as name → text.</summary>
    public IReadOnlyDictionary<string, string> SettingsOf(string @namespace)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Settings is null || !Settings.TryGetValue(@namespace, out var element) || element.ValueKind != JsonValueKind.Object)
            return values;
        foreach (var property in element.EnumerateObject())
        {
            values[property.Name] = property.Value.ValueKind switch
            {
                JsonValueKind.String => property.Value.GetString()!,
                JsonValueKind.Null => string.Empty,
                _ => property.Value.GetRawText(),
            };
        }

        return values;
    }
}

/// <summary>Only the <c>queue</c> block of a request body; the task template is read as a task definition.</summary>
public sealed record QueueEnvelope
{
    public QueueBlock? Queue { get; init; }
}

/// <summary>A stored queue: its task template, its queue block, and what the poll loop last saw.</summary>
public sealed record StoredQueue
{
    public required string Id { get; init; }

    public required Tasks.TaskDefinition Template { get; init; }

    public required QueueBlock Block { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? LastPollAt { get; init; }

    public string? LastError { get; init; }

    public DateTimeOffset? NextPollAt { get; init; }

    public bool Enabled => Block.Status == "ENABLED";
}
