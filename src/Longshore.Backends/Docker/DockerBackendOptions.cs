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

    /// <summary>
    /// How long a container may sit created but not started before reconciliation takes its launch for abandoned and
    /// starts it. A younger one may still have a start on its way from the instance that created it (a leader killed
    /// mid-launch: the engine goes on with the requests it already has); starting it too would run a finished container
    /// a second time. Default 15 s.
    /// </summary>
    public TimeSpan AbandonedCreateAge { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long pulling a missing image may take. Default 5 min.</summary>
    public TimeSpan PullTimeout { get; init; } = TimeSpan.FromMinutes(5);
}
