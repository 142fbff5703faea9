namespace Longshore.Backends.Docker;

/// <summary>Settings of the local Docker-compatible engine backend.</summary>
public sealed record DockerBackendOptions
{
    /// <summary>The engine API endpoint, e.g. <c>unix:///run/podman/podman.sock</c>.</summary>
    public required Uri Endpoint { get; init; }

    /// <summary>Label value that marks containers as this store's, so several Longshores can share one engine.</summary>
    public required string InstanceId { get; init; }

    /// <summary>Most bytes of stdout and of stderr kept per run once its container is gone (the tail). Default 1 MiB.</summary>
    public int LogCapBytes { get; init; } = 1024 * 1024;

    /// <summary>How long pulling a missing image may take. Default 5 min.</summary>
    public TimeSpan PullTimeout { get; init; } = TimeSpan.FromMinutes(5);
}
