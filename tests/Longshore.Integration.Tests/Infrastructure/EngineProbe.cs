using Docker.DotNet.Models;
using k8s;
using Longshore.Backends.Docker;
using Longshore.Backends.Kubernetes;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>What a run's container or pod looks like on the engine, as the engine itself reports it.</summary>
public sealed record EngineView(long MemoryBytes, double Cpus, bool HostNetwork, string? RunLabel, string? FamilyLabel, IReadOnlyList<string> Env);

/// <summary>
/// The engine compliance suites' view of an engine behind Longshore: counts what it holds for a run or a family,
/// removes a run's container behind Longshore's back, reads a run's spec. One implementation per engine.
/// </summary>
public interface IEngineProbe
{
    /// <summary>The engine keeps stdout and stderr apart (the Kubernetes log API interleaves them).</summary>
    bool SeparatesStderr { get; }

    Task<int> CountRunAsync(string mesosId);

    Task<int> CountFamilyAsync(string familyId, bool runningOnly = false);

    Task RemoveBehindOurBackAsync(string mesosId);

    Task<EngineView> InspectAsync(string mesosId);
}

public sealed class DockerProbe : IEngineProbe
{
    public bool SeparatesStderr => true;

    public async Task<int> CountRunAsync(string mesosId) => (await TestEngine.ListByLabelAsync(DockerBackend.RunLabel, mesosId)).Count;

    public async Task<int> CountFamilyAsync(string familyId, bool runningOnly = false) =>
        (await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, familyId, runningOnly)).Count;

    public async Task RemoveBehindOurBackAsync(string mesosId)
    {
        using var client = TestEngine.CreateClient();
        await client.Containers.RemoveContainerAsync(DockerBackend.ContainerName(mesosId), new ContainerRemoveParameters { Force = true });
    }

    public async Task<EngineView> InspectAsync(string mesosId)
    {
        using var client = TestEngine.CreateClient();
        var inspect = await client.Containers.InspectContainerAsync(DockerBackend.ContainerName(mesosId));
        var host = inspect.HostConfig!;
        return new EngineView(host.Memory, (double)host.CPUQuota / host.CPUPeriod, host.NetworkMode == "host",
            inspect.Config!.Labels[DockerBackend.RunLabel], inspect.Config.Labels[DockerBackend.FamilyLabel], inspect.Config.Env.ToList());
    }
}

public sealed class KubernetesProbe(string ns) : IEngineProbe
{
    public bool SeparatesStderr => false;

    public async Task<int> CountRunAsync(string mesosId) => (await TestCluster.PodsAsync(ns, PodSpecs.RunLabel, PodSpecs.PodName(mesosId))).Count;

    public async Task<int> CountFamilyAsync(string familyId, bool runningOnly = false) =>
        (await TestCluster.PodsAsync(ns, PodSpecs.FamilyLabel, PodSpecs.LabelValue(familyId)))
            .Count(pod => !runningOnly || (pod.Status?.Phase == "Running" && pod.Metadata.DeletionTimestamp is null));

    public async Task RemoveBehindOurBackAsync(string mesosId)
    {
        using var client = TestCluster.CreateClient();
        await client.CoreV1.DeleteNamespacedPodAsync(PodSpecs.PodName(mesosId), ns, gracePeriodSeconds: 0);
    }

    public async Task<EngineView> InspectAsync(string mesosId)
    {
        using var client = TestCluster.CreateClient();
        var pod = await client.CoreV1.ReadNamespacedPodAsync(PodSpecs.PodName(mesosId), ns);
        var limits = pod.Spec.Containers[0].Resources.Limits;
        return new EngineView((long)limits["memory"].ToDecimal(), (double)limits["cpu"].ToDecimal(), pod.Spec.HostNetwork == true,
            pod.Metadata.Annotations[PodSpecs.MesosIdAnnotation], pod.Metadata.Annotations[PodSpecs.FamilyAnnotation],
            pod.Spec.Containers[0].Env.Select(e => $"{e.Name}={e.Value}").ToList());
    }
}
