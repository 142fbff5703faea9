using Longshore.Backends.Kubernetes;
using Longshore.Backends.Mesos;
using Longshore.Core.Jobs;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;

namespace Longshore.Server.Hosting;

/// <summary>Everything <c>longshore server</c> can be told. Defaults are the embedded single-machine setup.</summary>
public sealed record LongshoreServerOptions
{
    public string Urls { get; init; } = "http://127.0.0.1:8080";

    /// <summary>Folder for the embedded store (longshore.db). Created if missing.</summary>
    public string DataDir { get; init; } = "longshore-data";

    /// <summary>Execution engine: <c>docker</c> (the local Docker-compatible engine, default), <c>mesos</c> or <c>kubernetes</c>.</summary>
    public string Engine { get; init; } = "docker";

    /// <summary>Mesos settings, used with <see cref="Engine"/> <c>mesos</c>; the framework id file defaults to &lt;data&gt;/mesos-framework-id.</summary>
    public MesosBackendOptions Mesos { get; init; } = new();

    /// <summary>Kubernetes settings, used with <see cref="Engine"/> <c>kubernetes</c>; the instance label is the store's id.</summary>
    public KubernetesBackendOptions Kubernetes { get; init; } = new();

    /// <summary>Engine endpoint; null tries DOCKER_HOST, then the usual Docker and Podman sockets.</summary>
    public string? DockerHost { get; init; }

    public IReadOnlyList<string> AllowedHostPaths { get; init; } = [];

    public SchedulerOptions Scheduler { get; init; } = new();

    public RetryOptions Retry { get; init; } = new();

    /// <summary>Scheduler lease, for several instances on a shared store.</summary>
    public LeaderOptions Leader { get; init; } = new();

    public int LogCapBytes { get; init; } = 1024 * 1024;

    public JobSettings Jobs { get; init; } = new();

    /// <summary>How long ended runs are kept (Hippo's TASK_RETENTION_SECONDS and TASK_RETENTION_COUNT).</summary>
    public RetentionOptions Retention { get; init; } = new();

    /// <summary>File of access tokens, one <c>ROLE:NAME:TOKEN</c> per line.</summary>
    public string? TokensFile { get; init; }

    /// <summary>Base64 of the 32-byte key that encrypts queue secrets at rest; null uses (or creates) &lt;data&gt;/secrets.key.</summary>
    public string? SecretsKey { get; init; }

    /// <summary>Folder whose files secret queue settings may reference as <c>${file:NAME}</c>; null refuses such references.</summary>
    public string? SecretsDir { get; init; }

    /// <summary>Access tokens given as a setting (<c>--tokens</c>, usually LONGSHORE_TOKENS), <c>;</c>-separated.</summary>
    public string? TokensVariable { get; init; }

    /// <summary><c>sqlite:PATH</c>, <c>postgres:CONNSTRING</c> or <c>redis:CONFIG</c>; null is SQLite in <see cref="DataDir"/>.</summary>
    public string? Store { get; init; }

    /// <summary>SQLite synchronous mode: FULL (every transition fsynced) or NORMAL (faster; survives a process crash, not a power cut).</summary>
    public string SqliteSynchronous { get; init; } = "FULL";

    /// <summary>Every failing setting, named with its rule.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>(Scheduler.Validate());
        errors.AddRange(Leader.Validate());
        errors.AddRange(Retention.Validate());
        foreach (var url in Urls.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                errors.Add($"urls: '{url}' must be an absolute http:// or https:// address such as http://127.0.0.1:8080");
        }

        if (string.IsNullOrWhiteSpace(DataDir))
            errors.Add("data: must name a folder");
        foreach (var path in AllowedHostPaths)
        {
            if (!path.StartsWith('/'))
                errors.Add($"allow-host-path: '{path}' must be an absolute path");
        }

        if (Retry.BackoffBase <= TimeSpan.Zero || Retry.BackoffBase > TimeSpan.FromHours(1))
            errors.Add($"retry-backoff-base: must be between 0 and 3600 seconds (exclusive of 0), got {Retry.BackoffBase.TotalSeconds}");
        if (Retry.BackoffCap < Retry.BackoffBase)
            errors.Add($"retry-backoff-cap: must be at least retry-backoff-base ({Retry.BackoffBase.TotalSeconds} s), got {Retry.BackoffCap.TotalSeconds}");
        if (Jobs.Backoff.BackoffBase <= TimeSpan.Zero || Jobs.Backoff.BackoffCap < Jobs.Backoff.BackoffBase)
            errors.Add($"job-backoff-base / job-backoff-cap: base must be positive and the cap at least the base, got {Jobs.Backoff.BackoffBase.TotalSeconds} / {Jobs.Backoff.BackoffCap.TotalSeconds}");
        if (LogCapBytes is < 1024 or > 64 * 1024 * 1024)
            errors.Add($"log-cap-bytes: must be between 1024 and 67108864, got {LogCapBytes}");
        if (SecretsKey is not null && !Security.SecretsKey.IsValid(SecretsKey))
            errors.Add("secrets-key: must be the base64 of 32 random bytes (e.g. `openssl rand -base64 32`)");
        if (StoreLocation.Parse(Store, DataDir).Error is { } storeError)
            errors.Add(storeError);
        if (SecretsDir is not null && (!SecretsDir.StartsWith('/') || !Directory.Exists(SecretsDir)))
            errors.Add($"secrets-dir: must be an absolute path to an existing folder, got '{SecretsDir}'");
        if (Engine is not ("docker" or "mesos" or "kubernetes"))
            errors.Add($"engine: must be docker, mesos or kubernetes, got '{Engine}'");
        if (Engine == "mesos")
            errors.AddRange(Mesos.Validate());
        if (Engine == "kubernetes")
            errors.AddRange(Kubernetes.Validate());
        if (SqliteSynchronous is not ("FULL" or "NORMAL"))
            errors.Add($"sqlite-synchronous: must be FULL or NORMAL, got '{SqliteSynchronous}'");
        return errors;
    }
}

/// <summary>How replicated jobs are kept alive.</summary>
public sealed record JobSettings
{
    /// <summary>Backoff between replacements of a crash-looping replica. Default 1 s doubling, capped at 5 min.</summary>
    public RetryOptions Backoff { get; init; } = new();

    public JobOptions Reconciler { get; init; } = new();
}
