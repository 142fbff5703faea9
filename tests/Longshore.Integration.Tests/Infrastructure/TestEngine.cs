using Docker.DotNet;
using Docker.DotNet.Models;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>The real container engine the suite runs against (podman's Docker API here), chosen like the server chooses it.</summary>
public static class TestEngine
{
    public static string Endpoint { get; } =
        Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } host ? host : "unix:///run/longshore/podman.sock";

    public static string Image { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_IMAGE") ?? "busybox";

    public static DockerClient CreateClient() => new DockerClientBuilder().WithEndpoint(new Uri(Endpoint)).Build();

    /// <summary>Containers (running or not) carrying the label, as the engine reports them.</summary>
    public static async Task<IList<ContainerListResponse>> ListByLabelAsync(string label, string value, bool runningOnly = false)
    {
        using var client = CreateClient();
        var filters = new Dictionary<string, IDictionary<string, bool>>
        {
            ["label"] = new Dictionary<string, bool> { [$"{label}={value}"] = true },
        };
        if (runningOnly)
            filters["status"] = new Dictionary<string, bool> { ["running"] = true };
        return await client.Containers.ListContainersAsync(new ContainersListParameters { All = !runningOnly, Filters = filters });
    }
}
