using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Longshore.Server.Api;

/// <summary>
/// The Hippo-compatible queue routes. A queue is a task template plus a <c>queue</c> block; secret settings are stored
/// but always shown as <c>***</c>, and an update that sends <c>***</c> back keeps the stored value.
/// </summary>
public static partial class QueuesApi
{
    public const string Masked = "***";

    public static void MapQueuesApi(this IEndpointRouteBuilder routes)
    {
        var queues = routes.MapGroup("/queues").WithTags("queues");
        queues.MapGet("/", ListAsync).WithSummary("Every queue with its poll status, backlog, running count and lag");
        queues.MapMethods("/", ["POST", "PUT"], (HttpRequest request, IQueueStore store, ITaskStore runs, QueuePoller poller, QueueSecrets secrets, TaskLimits limits,
                TimeProvider time, CancellationToken ct) => SaveAsync(null, request, store, runs, poller, secrets, limits, time, ct))
            .WithSummary("Create the queue, or replace the one with the body's id (as Hippo); returns {\"id\": …}");
        queues.MapGet("/{id}/", GetAsync).WithSummary("One queue");
        queues.MapMethods("/{id}/", ["POST", "PUT"], (string id, HttpRequest request, IQueueStore store, ITaskStore runs, QueuePoller poller, QueueSecrets secrets,
            TaskLimits limits, TimeProvider time, CancellationToken ct) => SaveAsync(id, request, store, runs, poller, secrets, limits, time, ct)).WithSummary("Update a queue; returns it");
        queues.MapDelete("/{id}/", DeleteAsync).WithSummary("Delete a queue (its runs stay); returns {\"deleted\": id}");
        queues.MapGet("/{id}/enable/", (string id, IQueueStore store, QueuePoller poller, CancellationToken ct) => SetStatusAsync(id, "ENABLED", store, poller, ct))
            .WithSummary("Start polling; returns {\"enabled\": id}");
        queues.MapGet("/{id}/disable/", (string id, IQueueStore store, QueuePoller poller, CancellationToken ct) => SetStatusAsync(id, "DISABLED", store, poller, ct))
            .WithSummary("Stop polling; returns {\"disabled\": id}");
        routes.MapGet("/queuetypes/", (QueuePoller poller) => Results.Json(poller.Sources.Values.OrderBy(s => s.Type.Type, StringComparer.Ordinal).Select(s => Describe(s.Type))))
            .WithTags("queues").WithSummary("Each queue type as Hippo lists it: namespace, label, and inputs keyed by name with input kind, label and default");
    }

    /// <summary>
    /// A queue type in Hippo's shape: <c>inputs</c> is an object keyed by the input's name, each with <c>input</c>
    /// (<c>text</c>, <c>number</c> or <c>password</c>), <c>label</c> and, where there is one, <c>default</c> (a number
    /// for number inputs); <c>required</c> and <c>secret</c> are ours. Keys keep the source's order.
    /// </summary>
    public static JsonObject Describe(QueueType type)
    {
        var inputs = new JsonObject();
        foreach (var input in type.Inputs)
        {
            var item = new JsonObject { ["input"] = input.Input, ["label"] = input.Label };
            if (input.Default is { } value)
            {
                item["default"] = input.Number && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number)
                    ? JsonValue.Create(number)
                    : JsonValue.Create(value);
            }

            item["required"] = input.Needed;
            item["secret"] = input.Secret;
            inputs[input.Name] = item;
        }

        return new JsonObject { ["type"] = type.Type, ["namespace"] = type.Namespace, ["label"] = type.Label, ["inputs"] = inputs };
    }

    [GeneratedRegex("[^A-Za-z0-9_.-]+")]
    private static partial Regex NotIdCharacters();

    /// <summary>
    /// <c>POST</c>/<c>PUT /queues/</c> create the queue or, as Hippo does, replace the one with that id (its poll status
    /// and source state stay), answering <c>{"id": …}</c>; on <c>/queues/{id}/</c> the queue must exist, and the answer is
    /// the queue.
    /// </summary>
    private static async Task<IResult> SaveAsync(string? pathId, HttpRequest request, IQueueStore store, ITaskStore runs, QueuePoller poller, QueueSecrets secrets,
        TaskLimits limits, TimeProvider time, CancellationToken cancellationToken)
    {
        var (template, block, existing, error) = await ReadAsync(request, pathId, store, poller, secrets, limits, cancellationToken);
        if (error is not null)
            return error;
        var id = template!.Id!;
        if (existing is null)
        {
            var queue = new StoredQueue { Id = id, Template = template, Block = secrets.Protect(block!), CreatedAt = time.GetUtcNow() };
            if (!await store.CreateQueueAsync(queue, cancellationToken))
                return ApiResults.Error(StatusCodes.Status409Conflict, $"id: queue '{id}' was created by another request at the same time; send it again to replace it");
        }
        else if (!await store.UpdateQueueAsync(existing with { Template = template, Block = secrets.Protect(block!) }, cancellationToken))
        {
            return NotFound(id);
        }

        poller.Nudge();
        return pathId is null
            ? Results.Json(new { id })
            : Results.Json(await ShowAsync((await store.GetQueueAsync(id, cancellationToken))!, store, runs, poller, cancellationToken));
    }

    private static async Task<IResult> ListAsync(IQueueStore store, ITaskStore runs, QueuePoller poller, CancellationToken cancellationToken)
    {
        var all = new JsonArray();
        foreach (var queue in await store.ListQueuesAsync(cancellationToken))
            all.Add(await ShowAsync(queue, store, runs, poller, cancellationToken));
        return Results.Json(all);
    }

    private static async Task<IResult> GetAsync(string id, IQueueStore store, ITaskStore runs, QueuePoller poller, CancellationToken cancellationToken) =>
        await store.GetQueueAsync(id, cancellationToken) is { } queue ? Results.Json(await ShowAsync(queue, store, runs, poller, cancellationToken)) : NotFound(id);

    private static async Task<IResult> DeleteAsync(string id, IQueueStore store, CancellationToken cancellationToken) =>
        await store.DeleteQueueAsync(id, cancellationToken) ? Results.Json(new { deleted = id }) : NotFound(id);

    private static async Task<IResult> SetStatusAsync(string id, string status, IQueueStore store, QueuePoller poller, CancellationToken cancellationToken)
    {
        var queue = await store.GetQueueAsync(id, cancellationToken);
        if (queue is null)
            return NotFound(id);
        await store.UpdateQueueAsync(queue with { Block = queue.Block with { Status = status } }, cancellationToken);
        poller.Nudge();
        // Hippo's answer: {"enabled": id} or {"disabled": id}.
        return Results.Json(new JsonObject { [status == "ENABLED" ? "enabled" : "disabled"] = id });
    }

    /// <summary>
    /// Parses and validates a body and finds the stored queue of its id (which must exist when named in the path); a
    /// queue being replaced has its masked secrets filled from the stored one.
    /// </summary>
    private static async Task<(TaskDefinition?, QueueBlock?, StoredQueue?, IResult?)> ReadAsync(HttpRequest request, string? pathId, IQueueStore store, QueuePoller poller,
        QueueSecrets secrets, TaskLimits limits, CancellationToken cancellationToken)
    {
        var body = await RequestBody.ReadAsync(request, cancellationToken);
        if (body is null)
            return (null, null, null, ApiResults.Error(StatusCodes.Status413PayloadTooLarge, $"body: must be at most {RequestBody.MaxBytes} bytes"));
        var (template, errors) = TaskDefinitionJson.Parse<TaskDefinition>(body);
        var (envelope, envelopeErrors) = TaskDefinitionJson.Parse<QueueEnvelope>(body);
        if (errors.Count > 0 || envelopeErrors.Count > 0)
            return (null, null, null, ApiResults.BadRequest(errors.Concat(envelopeErrors).Distinct()));

        var block = envelope!.Queue;
        var id = pathId ?? template!.Id ?? (block?.Name is { Length: > 0 } name ? NotIdCharacters().Replace(name, "-").Trim('-', '.', '_') : null);
        if (pathId is not null && template!.Id is not null && template.Id != pathId)
            return (null, null, null, ApiResults.BadRequest([$"id: '{template.Id}' does not match the queue in the path, '{pathId}'"]));
        template = template! with { Id = id };
        var existing = string.IsNullOrEmpty(id) ? null : await store.GetQueueAsync(id, cancellationToken);
        if (pathId is not null && existing is null)
            return (null, null, null, NotFound(pathId));
        if (existing is not null && block is not null)
            block = Unmask(block, secrets.Unseal(existing.Block), poller);

        // Sources check their settings with references resolved (a connection string must still parse); their errors never repeat a value.
        var problems = block is null ? QueueValidator.Validate(template, block, poller.Sources, limits) : secrets.CheckReferences(block);
        if (problems.Count == 0 && block is not null)
            problems = QueueValidator.Validate(template, secrets.Reveal(block), poller.Sources, limits);
        return problems.Count > 0 ? (null, null, null, ApiResults.BadRequest(problems)) : (template, block, existing, null);
    }

    private static async Task<JsonNode> ShowAsync(StoredQueue queue, IQueueStore store, ITaskStore runs, QueuePoller poller, CancellationToken cancellationToken)
    {
        var node = JsonSerializer.SerializeToNode(queue.Template with { Id = queue.Id }, TaskDefinitionJson.Options)!.AsObject();
        var block = JsonSerializer.SerializeToNode(queue.Block, TaskDefinitionJson.Options)!.AsObject();
        // Hippo's timestamps, in Unix seconds: the last poll, and the last time a poll made tasks.
        block["last_run_tstamp"] = queue.LastPollAt?.ToUnixTimeSeconds();
        block["last_task_queued_tstamp"] = QueuePoller.LastTaskQueuedAt(await store.GetSourceStateAsync(queue.Id, cancellationToken))?.ToUnixTimeSeconds();
        if (poller.Sources.GetValueOrDefault(queue.Block.Type ?? string.Empty) is { } source && block[source.Type.Namespace] is JsonObject settings)
        {
            // A reference (${env:…}, ${file:…}) says where the secret is, not what it is: it is shown as written.
            foreach (var input in source.Type.Inputs.Where(i => i.Secret && settings[i.Name] is JsonValue value
                && !(value.TryGetValue<string>(out var text) && SecretReferences.IsReference(text))))
                settings[input.Name] = Masked;
        }

        node["queue"] = block;
        var (active, oldestWaiting) = await store.QueueLoadAsync(queue.Id, cancellationToken);
        long? backlog = null;
        if (poller.Sources.GetValueOrDefault(queue.Block.Type ?? string.Empty) is IBacklogSource counted)
        {
            try
            {
                backlog = await counted.BacklogAsync(poller.Usable(queue), cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                backlog = null;
            }
        }

        node["stats"] = new JsonObject
        {
            ["backlog"] = backlog,
            ["running"] = active,
            ["lag_seconds"] = oldestWaiting is { } oldest ? Math.Max(0, (TimeProvider.System.GetUtcNow() - oldest).TotalSeconds) : 0,
            ["last_poll_at"] = queue.LastPollAt,
            ["next_poll_at"] = queue.NextPollAt,
            ["last_error"] = queue.LastError,
            ["steps"] = StepSeconds(await runs.ListAsync(new RunQuery(StepSample, FamilyId: queue.Id), cancellationToken)),
        };
        return node;
    }

    /// <summary>Runs of a queue whose step times <c>stats.steps</c> summarises: the most recent ones.</summary>
    private const int StepSample = 100;

    /// <summary>
    /// Median seconds of each step of the queue's recent runs, from the times the store keeps: <c>wait</c> (recorded →
    /// staged), <c>launch</c> (staged → running) and <c>run</c> (running → ended); null where no run got that far.
    /// </summary>
    private static JsonObject StepSeconds(IReadOnlyList<TaskRun> recent)
    {
        static double? Median(IEnumerable<TimeSpan> spans)
        {
            var sorted = spans.Select(s => Math.Max(0, s.TotalSeconds)).Order().ToList();
            return sorted.Count == 0 ? null : Math.Round(sorted[sorted.Count / 2], 3);
        }

        return new JsonObject
        {
            ["sample"] = recent.Count,
            ["wait_seconds"] = Median(recent.Where(r => r.StagedAt is not null).Select(r => r.StagedAt!.Value - r.CreatedAt)),
            ["launch_seconds"] = Median(recent.Where(r => r is { StagedAt: not null, StartedAt: not null }).Select(r => r.StartedAt!.Value - r.StagedAt!.Value)),
            ["run_seconds"] = Median(recent.Where(r => r is { StartedAt: not null, FinishedAt: not null }).Select(r => r.FinishedAt!.Value - r.StartedAt!.Value)),
        };
    }

    /// <summary>A secret sent back as *** keeps its stored value, so editing a queue never needs the secret again.</summary>
    private static QueueBlock Unmask(QueueBlock incoming, QueueBlock stored, QueuePoller poller)
    {
        if (poller.Sources.GetValueOrDefault(incoming.Type ?? string.Empty) is not { } source || incoming.Settings is null
            || !incoming.Settings.TryGetValue(source.Type.Namespace, out var element) || element.ValueKind != JsonValueKind.Object)
            return incoming;
        var settings = JsonNode.Parse(element.GetRawText())!.AsObject();
        var old = stored.SettingsOf(source.Type.Namespace);
        foreach (var input in source.Type.Inputs.Where(i => i.Secret))
        {
            if (settings[input.Name]?.GetValue<string>() == Masked && old.TryGetValue(input.Name, out var kept))
                settings[input.Name] = kept;
        }

        var all = new Dictionary<string, JsonElement>(incoming.Settings, StringComparer.Ordinal)
        {
            [source.Type.Namespace] = JsonSerializer.SerializeToElement(settings),
        };
        return incoming with { Settings = all };
    }

    private static IResult NotFound(string id) => ApiResults.Error(StatusCodes.Status404NotFound, $"no queue with id '{id}'");
}
