using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Longshore.Core.Queues;
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
        queues.MapPost("/", CreateAsync).WithSummary("Create a queue; returns {\"id\": …}");
        queues.MapPut("/", (HttpRequest request, IQueueStore store, QueuePoller poller, QueueSecrets secrets, TaskLimits limits, CancellationToken ct) =>
                UpdateAsync(null, request, store, poller, secrets, limits, ct))
            .WithSummary("Update the queue named by the body's id");
        queues.MapGet("/{id}/", GetAsync).WithSummary("One queue");
        queues.MapMethods("/{id}/", ["POST", "PUT"], (string id, HttpRequest request, IQueueStore store, QueuePoller poller, QueueSecrets secrets, TaskLimits limits,
            CancellationToken ct) => UpdateAsync(id, request, store, poller, secrets, limits, ct)).WithSummary("Update a queue");
        queues.MapDelete("/{id}/", DeleteAsync).WithSummary("Delete a queue (its runs stay)");
        queues.MapGet("/{id}/enable/", (string id, IQueueStore store, QueuePoller poller, CancellationToken ct) => SetStatusAsync(id, "ENABLED", store, poller, ct));
        queues.MapGet("/{id}/disable/", (string id, IQueueStore store, QueuePoller poller, CancellationToken ct) => SetStatusAsync(id, "DISABLED", store, poller, ct));
        routes.MapGet("/queuetypes/", (QueuePoller poller) => Results.Json(poller.Sources.Values.OrderBy(s => s.Type.Type, StringComparer.Ordinal).Select(s => s.Type)))
            .WithTags("queues").WithSummary("Each queue type: namespace, label and inputs with their labels and defaults");
    }

    [GeneratedRegex("[^A-Za-z0-9_.-]+")]
    private static partial Regex NotIdCharacters();

    private static async Task<IResult> CreateAsync(HttpRequest request, IQueueStore store, QueuePoller poller, QueueSecrets secrets, TaskLimits limits, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var (template, block, error) = await ReadAsync(request, null, null, poller, secrets, limits, cancellationToken);
        if (error is not null)
            return error;
        var queue = new StoredQueue { Id = template!.Id!, Template = template, Block = secrets.Protect(block!), CreatedAt = time.GetUtcNow() };
        if (!await store.CreateQueueAsync(queue, cancellationToken))
            return ApiResults.Error(StatusCodes.Status409Conflict, $"id: a queue '{queue.Id}' exists already; update it with PUT /queues/{queue.Id}/");
        poller.Nudge();
        return Results.Json(new { queue.Id });
    }

    private static async Task<IResult> UpdateAsync(string? pathId, HttpRequest request, IQueueStore store, QueuePoller poller, QueueSecrets secrets, TaskLimits limits,
        CancellationToken cancellationToken)
    {
        var (template, block, error) = await ReadAsync(request, pathId, store, poller, secrets, limits, cancellationToken);
        if (error is not null)
            return error;
        var existing = (await store.GetQueueAsync(template!.Id!, cancellationToken))!;
        if (!await store.UpdateQueueAsync(existing with { Template = template, Block = secrets.Protect(block!) }, cancellationToken))
            return NotFound(template.Id!);
        poller.Nudge();
        return Results.Json(await ShowAsync((await store.GetQueueAsync(template.Id!, cancellationToken))!, store, poller, cancellationToken));
    }

    private static async Task<IResult> ListAsync(IQueueStore store, QueuePoller poller, CancellationToken cancellationToken)
    {
        var all = new JsonArray();
        foreach (var queue in await store.ListQueuesAsync(cancellationToken))
            all.Add(await ShowAsync(queue, store, poller, cancellationToken));
        return Results.Json(all);
    }

    private static async Task<IResult> GetAsync(string id, IQueueStore store, QueuePoller poller, CancellationToken cancellationToken) =>
        await store.GetQueueAsync(id, cancellationToken) is { } queue ? Results.Json(await ShowAsync(queue, store, poller, cancellationToken)) : NotFound(id);

    private static async Task<IResult> DeleteAsync(string id, IQueueStore store, CancellationToken cancellationToken) =>
        await store.DeleteQueueAsync(id, cancellationToken) ? Results.Json(new { id, deleted = true }) : NotFound(id);

    private static async Task<IResult> SetStatusAsync(string id, string status, IQueueStore store, QueuePoller poller, CancellationToken cancellationToken)
    {
        var queue = await store.GetQueueAsync(id, cancellationToken);
        if (queue is null)
            return NotFound(id);
        await store.UpdateQueueAsync(queue with { Block = queue.Block with { Status = status } }, cancellationToken);
        poller.Nudge();
        return Results.Json(await ShowAsync((await store.GetQueueAsync(id, cancellationToken))!, store, poller, cancellationToken));
    }

    /// <summary>Parses and validates a body; on update, fills masked secrets from the stored queue.</summary>
    private static async Task<(TaskDefinition?, QueueBlock?, IResult?)> ReadAsync(HttpRequest request, string? pathId, IQueueStore? store, QueuePoller poller,
        QueueSecrets secrets, TaskLimits limits, CancellationToken cancellationToken)
    {
        var body = await RequestBody.ReadAsync(request, cancellationToken);
        if (body is null)
            return (null, null, ApiResults.Error(StatusCodes.Status413PayloadTooLarge, $"body: must be at most {RequestBody.MaxBytes} bytes"));
        var (template, errors) = TaskDefinitionJson.Parse<TaskDefinition>(body);
        var (envelope, envelopeErrors) = TaskDefinitionJson.Parse<QueueEnvelope>(body);
        if (errors.Count > 0 || envelopeErrors.Count > 0)
            return (null, null, ApiResults.BadRequest(errors.Concat(envelopeErrors).Distinct()));

        var block = envelope!.Queue;
        var id = pathId ?? template!.Id ?? (block?.Name is { Length: > 0 } name ? NotIdCharacters().Replace(name, "-").Trim('-', '.', '_') : null);
        if (pathId is not null && template!.Id is not null && template.Id != pathId)
            return (null, null, ApiResults.BadRequest([$"id: '{template.Id}' does not match the queue in the path, '{pathId}'"]));
        template = template! with { Id = id };
        if (store is not null)
        {
            var existing = id is null ? null : await store.GetQueueAsync(id, cancellationToken);
            if (existing is null)
                return (null, null, NotFound(id ?? "(no id)"));
            if (block is not null)
                block = Unmask(block, secrets.Unseal(existing.Block), poller);
        }

        // Sources check their settings with references resolved (a connection string must still parse); their errors never repeat a value.
        var problems = block is null ? QueueValidator.Validate(template, block, poller.Sources, limits) : secrets.CheckReferences(block);
        if (problems.Count == 0 && block is not null)
            problems = QueueValidator.Validate(template, secrets.Reveal(block), poller.Sources, limits);
        return problems.Count > 0 ? (null, null, ApiResults.BadRequest(problems)) : (template, block, null);
    }

    private static async Task<JsonNode> ShowAsync(StoredQueue queue, IQueueStore store, QueuePoller poller, CancellationToken cancellationToken)
    {
        var node = JsonSerializer.SerializeToNode(queue.Template with { Id = queue.Id }, TaskDefinitionJson.Options)!.AsObject();
        var block = JsonSerializer.SerializeToNode(queue.Block, TaskDefinitionJson.Options)!.AsObject();
        block["last_run_tstamp"] = queue.LastPollAt?.ToUnixTimeSeconds();
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
        };
        return node;
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
