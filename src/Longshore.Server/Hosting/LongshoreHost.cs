using System.Text.Json;
using Longshore.Backends.Docker;
using Longshore.Backends.Kubernetes;
using Longshore.Backends.Mesos;
using Longshore.Core.Execution;
using Longshore.Core.Jobs;
using Longshore.Core.Queues;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Core.Tracing;
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
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Prometheus;

namespace Longshore.Server.Hosting;

/// <summary>Builds the whole server: store, engine backend, scheduler and the HTTP API.</summary>
public static partial class LongshoreHost
{
    public static Task<WebApplication> BuildAsync(LongshoreServerOptions options, CancellationToken cancellationToken = default) =>
        BuildAsync(options, configure: null, cancellationToken);

    /// <param name="configure">Last changes to the services before the host is built (a benchmark's engine).</param>
    public static async Task<WebApplication> BuildAsync(LongshoreServerOptions options, Action<IServiceCollection>? configure, CancellationToken cancellationToken = default)
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
        var kubernetes = options.Engine == "kubernetes" ? KubernetesConnection.Configure(options.Kubernetes, Environment.GetEnvironmentVariable) : null;
        var endpoint = mesos
            ? options.Mesos.Masters[0]
            : kubernetes is not null
                ? new Uri(kubernetes.Host)
                : await DockerEndpoint.ResolveAsync(options.DockerHost, Environment.GetEnvironmentVariable, cancellationToken);

        // Times stored and judged across instances (leases, due times, de-duplication windows) are on the store server's
        // clock; the engines keep the machine's, against which they compare what the engine reports.
        var clock = new StoreClock(TimeProvider.System, store);
        var clockOffset = await clock.SyncAsync(cancellationToken);

        var services = builder.Services;
        services.AddSingleton<TimeProvider>(clock);
        services.AddSingleton(clock);
        services.AddHostedService<StoreClockService>();
        services.AddSingleton(options);
        services.AddSingleton(store);
        services.AddSingleton<ITaskStore>(store);
        services.AddSingleton<ILeaseStore>(store);
        if (mesos)
        {
            // The framework id lives next to the store, so a restart resubscribes as the same framework and finds its tasks.
            services.AddSingleton(options.Mesos with { FrameworkIdFile = options.Mesos.FrameworkIdFile ?? Path.Combine(options.DataDir, "mesos-framework-id") });
            // With a shared store every leader must subscribe as the same framework: its id is kept in the store, not beside one instance.
            services.AddSingleton<MesosBackend>(sp => new MesosBackend(sp.GetRequiredService<MesosBackendOptions>(), TimeProvider.System,
                sp.GetRequiredService<ILogger<MesosBackend>>(), frameworkIds: location.Shared ? new StoredFrameworkIdKeeper(store) : null));
            services.AddSingleton<IExecutionBackend>(sp => sp.GetRequiredService<MesosBackend>());
        }
        else if (kubernetes is not null)
        {
            services.AddSingleton(sp => new KubernetesBackend(options.Kubernetes with { InstanceId = store.InstanceId, LogCapBytes = options.LogCapBytes },
                kubernetes, TimeProvider.System, sp.GetRequiredService<ILogger<KubernetesBackend>>()));
            services.AddSingleton<IExecutionBackend>(sp => sp.GetRequiredService<KubernetesBackend>());
        }
        else
        {
            services.AddSingleton(new DockerBackendOptions { Endpoint = endpoint, InstanceId = store.InstanceId, LogCapBytes = options.LogCapBytes });
            services.AddSingleton(sp => new DockerBackend(sp.GetRequiredService<DockerBackendOptions>(), TimeProvider.System, sp.GetRequiredService<ILogger<DockerBackend>>()));
            services.AddSingleton<IExecutionBackend>(sp => sp.GetRequiredService<DockerBackend>());
        }
        services.AddSingleton(new TaskLimits { AllowedHostPaths = options.AllowedHostPaths, Engine = kubernetes is null ? null : new KubernetesDefinitionRules() });
        services.AddSingleton(options.Scheduler);
        services.AddSingleton(new RetryPolicy(options.Retry, Random.Shared.NextDouble));
        services.AddSingleton<SchedulerMetrics>();
        services.AddSingleton<QueueMetrics>();
        services.AddSingleton(sp => new Scheduler(
            sp.GetRequiredService<ITaskStore>(), sp.GetRequiredService<IExecutionBackend>(), sp.GetRequiredService<RetryPolicy>(),
            sp.GetRequiredService<SchedulerOptions>(), sp.GetRequiredService<TimeProvider>(), Guid.NewGuid,
            sp.GetRequiredService<SchedulerMetrics>(), sp.GetRequiredService<ILogger<Scheduler>>())
        {
            ShuttingDown = sp.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping,
        });
        services.AddSingleton(options.Leader);
        services.AddSingleton(sp => new RunRetention(store, options.Retention, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<RunRetention>>()));
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
            sp.GetRequiredService<QueueSecrets>(), sp.GetRequiredService<QueueMetrics>()));
        services.Configure<JsonOptions>(json =>
        {
            json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        });
        services.AddOpenApi();
        // Traces of each message and task (Longshore.Core.Tracing.RunTracing), exported by OTLP when the standard
        // variables ask for it (OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL, _HEADERS; OTEL_SERVICE_NAME, default longshore).
        if (Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT") is { Length: > 0 })
        {
            services.AddOpenTelemetry()
                .ConfigureResource(resource => resource.AddService(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") is { Length: > 0 } name ? name : "longshore"))
                .WithTracing(tracing => tracing.AddSource(RunTracing.SourceName).AddOtlpExporter());
        }

        configure?.Invoke(services);
        var app = builder.Build();
        // Checked before serving: an apiserver that cannot be reached, or an identity that may not run pods there, stops the start.
        if (kubernetes is not null)
            await app.Services.GetRequiredService<KubernetesBackend>().VerifyAccessAsync(cancellationToken);
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

        if (mesos)
        {
            // A refused secret or role stops the start with one line instead of a server that retries in silence. One
            // instance on its own store leads at once and may subscribe now; with a shared store only the credentials
            // are checked (a refused role shows later in /healthz and the dashboard).
            try
            {
                await app.Services.GetRequiredService<MesosBackend>().VerifyAccessAsync(subscribe: !location.Shared, TimeSpan.FromSeconds(10), cancellationToken);
            }
            catch (MesosAccessException e)
            {
                await app.DisposeAsync();
                throw new OptionsException([e.Message]);
            }
        }

        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Longshore");
        LogStarting(logger, options.Urls, store.Description, mesos ? $"mesos ({string.Join(", ", options.Mesos.Masters)})" : kubernetes is not null ? $"kubernetes ({endpoint}, namespace {options.Kubernetes.Namespace})" : endpoint.ToString(), options.Scheduler.Capacity);
        StoreClockService.ReportOffset(logger, clockOffset);
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
