using System.Globalization;
using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Longshore.Server.Api;

/// <summary>The Hippo-compatible task routes: create, list, show, kill, delete and read logs of one-off tasks.</summary>
public static class TasksApi
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    public static RouteGroupBuilder MapTasksApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/tasks").WithTags("tasks");
        group.MapGet("/", ListAsync).WithSummary("Recent runs, newest first; ?limit=&after=<mesos_id>&state=&id=");
        group.MapPost("/", CreateAsync).WithSummary("Create a one-off task; returns its mesos_id");
        group.MapGet("/{mesosId}/", GetAsync).WithSummary("One run");
        group.MapDelete("/{mesosId}/", DeleteAsync).WithSummary("Delete a run that has ended, with its logs; returns {\"deleted\": mesos_id}");
        group.MapMethods("/{mesosId}/kill/", ["GET", "POST"], KillAsync).WithSummary("Kill a run: SIGTERM, then SIGKILL after the grace period; returns {\"killed\": mesos_id}");
        group.MapGet("/{mesosId}/logs/", LogsAsync).WithSummary("stdout and stderr; ?follow=true streams them as text while the run lasts");
        return group;
    }

    private static async Task<IResult> ListAsync(HttpRequest request, ITaskStore store, CancellationToken cancellationToken)
    {
        var errors = new List<string>();
        var limit = DefaultLimit;
        if (request.Query.TryGetValue("limit", out var limitText)
            && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxLimit))
            errors.Add($"limit: must be a whole number from 1 to {MaxLimit}, got '{limitText}'");

        TaskState? state = null;
        if (request.Query.TryGetValue("state", out var stateText))
        {
            if (TaskStates.TryParse(stateText, out var parsed))
                state = parsed;
            else
                errors.Add($"state: must be one of {string.Join(", ", TaskStates.WireNames)}, got '{stateText}'");
        }

        if (errors.Count > 0)
            return ApiResults.BadRequest(errors);

        string? after = request.Query["after"];
        var runs = await store.ListAsync(new RunQuery(limit, after, state, request.Query["id"]), cancellationToken);
        // A page after an unknown run is empty (the store lists nothing after it): only then is it worth a read to tell
        // that from the end of the list.
        if (runs.Count == 0 && after is not null && await store.GetAsync(after, cancellationToken) is null)
            return ApiResults.BadRequest([$"after: no task with mesos_id '{after}'"]);
        return Results.Json(runs.Select(TaskRunResponse.From));
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, ITaskStore store, Scheduler scheduler, TaskLimits limits,
        TimeProvider time, CancellationToken cancellationToken)
    {
        var body = await RequestBody.ReadAsync(request, cancellationToken);
        if (body is null)
            return ApiResults.Error(StatusCodes.Status413PayloadTooLarge, $"body: must be at most {RequestBody.MaxBytes} bytes");

        var (definition, errors) = TaskDefinitionJson.Parse<TaskDefinition>(body);
        if (definition is not null)
            errors = TaskDefinitionValidator.Validate(definition, limits);
        if (errors.Count > 0 || definition is null)
            return ApiResults.BadRequest(errors);

        var run = TaskRun.CreateFirst(definition, Guid.NewGuid(), time.GetUtcNow());
        await store.InsertAsync(run, cancellationToken);
        scheduler.Nudge();
        return Results.Json(new CreatedTaskResponse(run.MesosId));
    }

    private static async Task<IResult> GetAsync(string mesosId, ITaskStore store, CancellationToken cancellationToken) =>
        await store.GetAsync(mesosId, cancellationToken) is { } run
            ? Results.Json(TaskRunResponse.From(run))
            : ApiResults.NotFound(mesosId);

    private static async Task<IResult> DeleteAsync(string mesosId, ITaskStore store, CancellationToken cancellationToken)
    {
        var run = await store.GetAsync(mesosId, cancellationToken);
        if (run is null)
            return ApiResults.NotFound(mesosId);
        if (!run.State.IsTerminal() || !await store.DeleteTerminalAsync(mesosId, cancellationToken))
        {
            return ApiResults.Error(StatusCodes.Status409Conflict,
                $"task '{mesosId}' is {run.State.ToWire()}; kill it first (/tasks/{mesosId}/kill/), then delete it once it has ended");
        }

        return Results.Json(new DeletedTaskResponse(mesosId));
    }

    private static async Task<IResult> KillAsync(string mesosId, Scheduler scheduler, CancellationToken cancellationToken)
    {
        var (outcome, run) = await scheduler.KillAsync(mesosId, cancellationToken: cancellationToken);
        return outcome switch
        {
            KillOutcome.NotFound => ApiResults.NotFound(mesosId),
            KillOutcome.AlreadyEnded => ApiResults.Error(StatusCodes.Status409Conflict, $"task '{mesosId}' already ended {run!.State.ToWire()}"),
            _ => Results.Json(new KilledTaskResponse(mesosId)),
        };
    }

    private static async Task<IResult> LogsAsync(string mesosId, HttpContext context, ITaskStore store, IExecutionBackend backend, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var run = await store.GetAsync(mesosId, cancellationToken);
        if (run is null)
            return ApiResults.NotFound(mesosId);
        var source = backend as ITaskLogSource;
        var follow = context.Request.Query["follow"].ToString();
        if (follow is not ("" or "false" or "true" or "1" or "0"))
            return ApiResults.BadRequest([$"follow: must be true or false, got '{follow}'"]);

        if (follow is "true" or "1")
        {
            context.Response.ContentType = "text/plain; charset=utf-8";
            // A run not started yet has no output to follow: the stream waits for its start (or its end) instead of
            // ending at once empty, which left a follower with nothing to show until it asked again.
            while (run is { State: TaskState.WaitingOnOffers or TaskState.Staging or TaskState.Starting })
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), time, cancellationToken);
                run = await store.GetAsync(mesosId, cancellationToken);
            }

            if (run is null)
                return Results.Empty;
            var wrote = false;
            if (run.State.IsActive() && source?.FollowLogs(run, cancellationToken) is { } stream)
            {
                await foreach (var chunk in stream)
                {
                    await context.Response.WriteAsync(chunk, cancellationToken);
                    await context.Response.Body.FlushAsync(cancellationToken);
                    wrote = true;
                }
            }

            // The container may have ended (and its output moved to the store) before the stream could attach.
            if (!wrote && await store.GetLogsAsync(mesosId, cancellationToken) is { } kept)
                await context.Response.WriteAsync(kept.Stdout + kept.Stderr, cancellationToken);
            return Results.Empty;
        }

        var logs = await store.GetLogsAsync(mesosId, cancellationToken);
        if (logs is null && run.State.IsActive() && source is not null)
            logs = await source.ReadLogsAsync(run, cancellationToken);
        logs ??= new TaskLogs(string.Empty, string.Empty, false);
        return Results.Json(new LogsResponse(run.MesosId, run.State.ToWire(), logs.Stdout, logs.Stderr, logs.Truncated));
    }
}
