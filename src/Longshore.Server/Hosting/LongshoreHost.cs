using System.Text.Json;
using Longshore.Backends.Docker;
using Longshore.Backends.Mesos;
using Longshore.Core.Execution;
using Longshore.Core.Jobs;
using Longshore.Core.Queues;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Server.Api;
using Longshore.Server.Dashboard;
using Longshore.Server.Jobs;
using Longshore.Server.Security;
using Longshore.Sources.Cron;
using Longshore.Sources.Nats;
using Longshore.Sources.Redis;
using Longshore.Sources.S3;
using Longshore.Sources.Sql;
using Longshore.Sources.Sqs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Longshore.Server.Hosting;

/// <summary>Builds the whole server: store, engine backend, scheduler and the HTTP API.</summary>
public static partial class LongshoreHost
{
    public static async Task<WebApplication> BuildAsync(LongshoreServerOptions options, CancellationToken cancellationToken = default)
    {
        var errors = options.Validate().ToList();
        var tokens = AccessTokens.Load(options.TokensFile, options.TokensVariable, errors);
        if (!tokens.Enabled && !AccessTokens.AllLoopback(options.Urls))
        {
            errors.Add($"urls: refusing to listen on {options.Urls} without access tokens: anyone who can reach it could start containers on this host. "
                + "Configure tokens (--tokens-file FILE or LONGSHORE_TOKENS, entries ROLE:NAME:TOKEN; see docs/security.md) or listen on 127.0.0.1");
        }

        if (errors.Count > 0)
            throw new OptionsException(errors);

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = RequestBody.MaxBytes * 4);
        builder.Logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            console.UseUtcTimestamp = true;
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        Directory.CreateDirectory(options.DataDir);
        var location = StoreLocation.Parse(options.Store, options.DataDir).Location!;
        var store = await location.OpenAsync(options.SqliteSynchronous, options.Leader.RenewInterval, cancellationToken);
        var mesos = options.Engine == "mesos";
        var endpoint = mesos
            ? options.Mesos.Masters[0]
            : await DockerEndpoint.ResolveAsync(options.DockerHost, Environment.GetEnvironmentVariable, cancellationToken);

        var services = builder.Services;
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(options);
        services.AddSingleton(store);
        services.AddSingleton<ITaskStore>(store);
        services.AddSingleton<ILeaseStore>(store);
        if (mesos)
        {
            // The framework id lives next to the store, so a restart resubscribes as the same framework and finds its tasks.
            services.AddSingleton(options.Mesos with { FrameworkIdFile = options.Mesos.FrameworkIdFile ?? Path.Combine(options.DataDir, "mesos-framework-id") });
            // With a shared store every leader must subscribe as the same framework: its id is kept in the store, not beside one instance.
            services.AddSingleton<MesosBackend>(sp => new MesosBackend(sp.GetRequiredService<MesosBackendOptions>(), sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<MesosBackend>>(), frameworkIds: location.Shared ? new StoredFrameworkIdKeeper(store) : null));
            services.AddSingleton<IExecutionBackend>(sp => sp.GetRequiredService<MesosBackend>());
        }
        else
        {
            services.AddSingleton(new DockerBackendOptions { Endpoint = endpoint, InstanceId = store.InstanceId, LogCapBytes = options.LogCapBytes });
            services.AddSingleton<DockerBackend>();
            services.AddSingleton<IExecutionBackend>(sp => sp.GetRequiredService<DockerBackend>());
        }
        services.AddSingleton(new TaskLimits { AllowedHostPaths = options.AllowedHostPaths });
        services.AddSingleton(options.Scheduler);
        services.AddSingleton(new RetryPolicy(options.Retry, Random.Shared.NextDouble));
        services.AddSingleton<SchedulerMetrics>();
        services.AddSingleton(sp => new Scheduler(
            sp.GetRequiredService<ITaskStore>(), sp.GetRequiredService<IExecutionBackend>(), sp.GetRequiredService<RetryPolicy>(),
            sp.GetRequiredService<SchedulerOptions>(), sp.GetRequiredService<TimeProvider>(), Guid.NewGuid,
            sp.GetRequiredService<SchedulerMetrics>(), sp.GetRequiredService<ILogger<Scheduler>>())
        {
            ShuttingDown = sp.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping,
        });
        services.AddSingleton(options.Leader);
        services.AddSingleton(sp => new LeaderElection(sp.GetRequiredService<ILeaseStore>(), options.Leader, sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<LeaderElection>>(), $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}"[..^24],
            // One process owns an SQLite file: a restarted server takes the lease at once instead of waiting out its predecessor's.
            takeOverAtStart: !location.Shared));
        services.AddHostedService<LeadershipService>();
        services.AddSingleton<IJobStore>(store);
        services.AddSingleton(options.Jobs);
        services.AddSingleton(sp => new JobReconciler(sp.GetRequiredService<IJobStore>(), sp.GetRequiredService<Scheduler>(),
            new RetryPolicy(options.Jobs.Backoff, Random.Shared.NextDouble), options.Jobs.Reconciler, sp.GetRequiredService<TimeProvider>(), Guid.NewGuid,
            sp.GetRequiredService<ILogger<JobReconciler>>()));
        services.AddHttpClient("health");
        services.AddSingleton<IHealthProbe, HealthProbe>();
        services.AddSingleton<JobHealthMonitor>();
        services.AddSingleton<IQueueStore>(store);
        services.AddSingleton<IQueueSource, CronSource>();
        services.AddSingleton<IQueueSource, RedisSource>();
        services.AddSingleton<IQueueSource, SqlQuerySource>();
        services.AddSingleton<IQueueSource, NatsSource>();
        services.AddSingleton<IQueueSource, SqsSource>();
        services.AddSingleton<IQueueSource, S3BucketSource>();
        var secretsKey = SecretsKey.Load(options.SecretsKey, options.DataDir);
        var references = new SecretReferences(options.SecretsDir, Environment.GetEnvironmentVariable);
        services.AddSingleton(sp => new QueueSecrets(secretsKey, sp.GetServices<IQueueSource>(), references));
        services.AddSingleton(sp => new QueuePoller(sp.GetRequiredService<IQueueStore>(), sp.GetRequiredService<Scheduler>(),
            sp.GetServices<IQueueSource>(), sp.GetRequiredService<TimeProvider>(), Guid.NewGuid, sp.GetRequiredService<ILogger<QueuePoller>>(),
            sp.GetRequiredService<QueueSecrets>()));
        services.Configure<JsonOptions>(json =>
        {
            json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        });
        services.AddOpenApi();

        var app = builder.Build();
        app.UseExceptionHandler(handler => handler.Run(context => ApiResults.Error(StatusCodes.Status500InternalServerError, "internal error; see the server log").ExecuteAsync(context)));
        app.UseStatusCodePages(context => context.HttpContext.Response.ContentLength is null && !context.HttpContext.Response.HasStarted
            ? ApiResults.Error(context.HttpContext.Response.StatusCode, StatusMessage(context.HttpContext)).ExecuteAsync(context.HttpContext)
            : Task.CompletedTask);
        app.UseAccessControl(tokens);
        app.MapTasksApi();
        app.MapJobsApi();
        app.MapQueuesApi();
        app.MapDashboard();
        app.MapHealthApi(endpoint);
        app.MapMetricsApi();
        app.MapOpenApi("/openapi/v1.json");

        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Longshore");
        LogStarting(logger, options.Urls, store.Description, mesos ? $"mesos ({string.Join(", ", options.Mesos.Masters)})" : endpoint.ToString(), options.Scheduler.Capacity);
        if (tokens.Enabled)
            LogTokens(logger, tokens.Count);
        else
            LogOpen(logger, options.Urls);
        return app;
    }

    private static string StatusMessage(HttpContext context) => context.Response.StatusCode switch
    {
        StatusCodes.Status404NotFound => $"no route for {context.Request.Method} {context.Request.Path}; see /openapi/v1.json",
        StatusCodes.Status405MethodNotAllowed => $"{context.Request.Method} is not allowed on {context.Request.Path}",
        _ => $"request failed with status {context.Response.StatusCode}",
    };

    [LoggerMessage(2, LogLevel.Information, "Access control on: {Count} tokens; every route but GET /healthz needs one")]
    private static partial void LogTokens(ILogger logger, int count);

    [LoggerMessage(3, LogLevel.Warning, "Open loopback mode: no access tokens are configured, so anyone on this machine can use {Urls}. Configure --tokens-file or LONGSHORE_TOKENS to require tokens")]
    private static partial void LogOpen(ILogger logger, string urls);

    [LoggerMessage(1, LogLevel.Information, "Longshore listening on {Urls}; store {Store}; engine {Engine}; capacity {Capacity} runs")]
    private static partial void LogStarting(ILogger logger, string urls, string store, string engine, int capacity);
}

/// <summary>The configuration is invalid; <see cref="Errors"/> names every failing setting.</summary>
public sealed class OptionsException(IReadOnlyList<string> errors) : Exception("invalid configuration: " + string.Join("; ", errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
