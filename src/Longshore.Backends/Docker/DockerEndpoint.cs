using Docker.DotNet;
using Longshore.Core.Execution;

namespace Longshore.Backends.Docker;

/// <summary>Finds the engine: the configured endpoint, else DOCKER_HOST, else the usual Docker and Podman sockets.</summary>
public static class DockerEndpoint
{
    public static IReadOnlyList<string> Candidates(string? configured, Func<string, string?> environment)
    {
        if (!string.IsNullOrWhiteSpace(configured))
            return [configured];
        if (environment("DOCKER_HOST") is { Length: > 0 } dockerHost)
            return [dockerHost];
        var candidates = new List<string> { "unix:///var/run/docker.sock", "unix:///run/podman/podman.sock" };
        if (environment("XDG_RUNTIME_DIR") is { Length: > 0 } runtimeDir)
            candidates.Add($"unix://{runtimeDir}/podman/podman.sock");
        candidates.Add("unix:///run/longshore/podman.sock");
        return candidates;
    }

    /// <summary>The first candidate whose engine answers a ping; otherwise an error that lists what was tried and why each failed.</summary>
    public static async Task<Uri> ResolveAsync(string? configured, Func<string, string?> environment, CancellationToken cancellationToken = default)
    {
        var tried = new List<string>();
        foreach (var candidate in Candidates(configured, environment))
        {
            if (!Uri.TryCreate(candidate, UriKind.Absolute, out var uri) || uri.Scheme is not ("unix" or "tcp" or "http" or "https"))
            {
                tried.Add($"{candidate} (not a unix://, tcp:// or http(s):// address)");
                continue;
            }

            if (uri.Scheme == "unix" && !File.Exists(uri.LocalPath))
            {
                tried.Add($"{candidate} (no such socket)");
                continue;
            }

            try
            {
                using var client = new DockerClientBuilder().WithEndpoint(uri).WithTimeout(TimeSpan.FromSeconds(5)).Build();
                await client.System.PingAsync(cancellationToken);
                return uri;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                tried.Add($"{candidate} ({e.GetBaseException().Message})");
            }
        }

        throw new EngineUnavailableException(
            "No container engine answered. Tried: " + string.Join("; ", tried)
            + ". Start Docker or the Podman API service (scripts/setup-engine.sh does it on Debian), or point DOCKER_HOST / --docker-host at it.");
    }
}
