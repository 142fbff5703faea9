using Longshore.Core.Jobs;
using Longshore.Core.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Longshore.Server.Api;

/// <summary>The taurus-compatible job routes, plus <c>PUT /job/{id}</c> to change a job in place.</summary>
public static class JobsApi
{
    public static RouteGroupBuilder MapJobsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/job").WithTags("jobs");
        group.MapPost("/new", CreateAsync).WithSummary("Create a replicated job (taurus shape)");
        group.MapGet("/all", ListAsync).WithSummary("Every job with its replicas");
        group.MapDelete("/all", DeleteAllAsync).WithSummary("Stop every job: kill all replicas; nothing restarts");
        group.MapGet("/{id}", GetAsync).WithSummary("A job: job_state PENDING|RUNNING|STOPPED and each replica's run");
        group.MapPut("/{id}", UpdateAsync).WithSummary("Replace the job's definition: replica changes scale, container changes roll over one replica at a time");
        group.MapDelete("/{id}", DeleteAsync).WithSummary("Stop the job: kill all replicas; nothing restarts");
        return group;
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, IJobStore jobs, JobReconciler reconciler, TaskLimits limits, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var (definition, error) = await ReadAsync(request, limits, cancellationToken);
        if (error is not null)
            return error;
        var now = time.GetUtcNow();
        var job = new Job { Id = definition!.Id!, Definition = definition, CreatedAt = now, UpdatedAt = now };
        if (!await jobs.CreateJobAsync(job, cancellationToken))
            return ApiResults.Error(StatusCodes.Status409Conflict, $"job '{job.Id}' exists and is running; change it with PUT /job/{job.Id} or DELETE it first");
        reconciler.Nudge();
        return Results.Json(await JobResponse.LoadAsync((await jobs.GetJobAsync(job.Id, cancellationToken))!, jobs, null, cancellationToken));
    }

    private static async Task<IResult> ListAsync(IJobStore jobs, JobHealthMonitor monitor, CancellationToken cancellationToken)
    {
        var all = new List<JobResponse>();
        foreach (var job in await jobs.ListJobsAsync(cancellationToken))
            all.Add(await JobResponse.LoadAsync(job, jobs, monitor, cancellationToken));
        return Results.Json(all);
    }

    private static async Task<IResult> GetAsync(string id, IJobStore jobs, JobHealthMonitor monitor, CancellationToken cancellationToken) =>
        await jobs.GetJobAsync(id, cancellationToken) is { } job
            ? Results.Json(await JobResponse.LoadAsync(job, jobs, monitor, cancellationToken))
            : NotFound(id);

    private static async Task<IResult> UpdateAsync(string id, HttpRequest request, IJobStore jobs, JobReconciler reconciler, TaskLimits limits, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var (definition, error) = await ReadAsync(request, limits, cancellationToken, id);
        if (error is not null)
            return error;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var job = await jobs.GetJobAsync(id, cancellationToken);
            if (job is null)
                return NotFound(id);
            if (job.State == JobState.Stopped)
                return ApiResults.Error(StatusCodes.Status409Conflict, $"job '{id}' is stopped; create it again with POST /job/new");
            var changed = job with
            {
                Definition = definition! with { Id = id },
                Generation = ContainersChanged(job.Definition, definition) ? job.Generation + 1 : job.Generation,
                UpdatedAt = time.GetUtcNow(),
            };
            if (await jobs.TryUpdateJobAsync(changed, job.Version, cancellationToken))
            {
                reconciler.Nudge();
                return Results.Json(await JobResponse.LoadAsync((await jobs.GetJobAsync(id, cancellationToken))!, jobs, null, cancellationToken));
            }
        }

        return ApiResults.Error(StatusCodes.Status409Conflict, $"job '{id}' kept changing while being updated; try again");
    }

    private static async Task<IResult> DeleteAsync(string id, IJobStore jobs, JobReconciler reconciler, TimeProvider time, CancellationToken cancellationToken)
    {
        var job = await StopAsync(id, jobs, time, cancellationToken);
        if (job is null)
            return NotFound(id);
        reconciler.Nudge();
        return Results.Json(await JobResponse.LoadAsync(job, jobs, null, cancellationToken));
    }

    private static async Task<IResult> DeleteAllAsync(IJobStore jobs, JobReconciler reconciler, TimeProvider time, CancellationToken cancellationToken)
    {
        var stopped = new List<JobResponse>();
        foreach (var job in await jobs.ListJobsAsync(cancellationToken))
        {
            if (await StopAsync(job.Id, jobs, time, cancellationToken) is { } done)
                stopped.Add(await JobResponse.LoadAsync(done, jobs, null, cancellationToken));
        }

        reconciler.Nudge();
        return Results.Json(stopped);
    }

    private static async Task<Job?> StopAsync(string id, IJobStore jobs, TimeProvider time, CancellationToken cancellationToken)
    {
        while (true)
        {
            var job = await jobs.GetJobAsync(id, cancellationToken);
            if (job is null || job.State == JobState.Stopped)
                return job;
            if (await jobs.TryUpdateJobAsync(job with { State = JobState.Stopped, UpdatedAt = time.GetUtcNow() }, job.Version, cancellationToken))
                return await jobs.GetJobAsync(id, cancellationToken);
        }
    }

    /// <summary>Anything but the replica counts changed: the replicas must be rolled over to the new definition.</summary>
    private static bool ContainersChanged(JobDefinition before, JobDefinition after)
    {
        static string Shape(JobDefinition job) => System.Text.Json.JsonSerializer.Serialize(
            (job.Tasks ?? []).Select(group => group with { Replicas = 0 }), TaskDefinitionJson.Options);
        return Shape(before) != Shape(after);
    }

    private static async Task<(JobDefinition? Definition, IResult? Error)> ReadAsync(HttpRequest request, TaskLimits limits, CancellationToken cancellationToken,
        string? pathId = null)
    {
        var body = await RequestBody.ReadAsync(request, cancellationToken);
        if (body is null)
            return (null, ApiResults.Error(StatusCodes.Status413PayloadTooLarge, $"body: must be at most {RequestBody.MaxBytes} bytes"));
        var (definition, errors) = TaskDefinitionJson.Parse<JobDefinition>(body);
        if (definition is not null && pathId is not null)
        {
            if (definition.Id is not null && definition.Id != pathId)
                return (null, ApiResults.BadRequest([$"id: '{definition.Id}' does not match the job in the path, '{pathId}'"]));
            definition = definition with { Id = pathId };
        }

        if (definition is not null)
            errors = JobValidator.Validate(definition, limits);
        return errors.Count > 0 || definition is null ? (null, ApiResults.BadRequest(errors)) : (definition, null);
    }

    private static IResult NotFound(string id) => ApiResults.Error(StatusCodes.Status404NotFound, $"no job with id '{id}'");
}
