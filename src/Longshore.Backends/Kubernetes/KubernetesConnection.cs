using k8s;
using Longshore.Core.Execution;

namespace Longshore.Backends.Kubernetes;

/// <summary>Where the backend finds its cluster and credentials, in the order kubectl and client-go look.</summary>
public static class KubernetesConnection
{
    /// <summary>
    /// <c>--kubeconfig</c> when given; else the pod's service account when running in a cluster; else the first file of
    /// <c>KUBECONFIG</c>; else <c>~/.kube/config</c>. Throws <see cref="EngineUnavailableException"/> naming what was tried.
    /// </summary>
    public static KubernetesClientConfiguration Configure(KubernetesBackendOptions options, Func<string, string?> environment)
    {
        try
        {
            if (options.Kubeconfig is { } file)
                return KubernetesClientConfiguration.BuildConfigFromConfigFile(file);
            if (KubernetesClientConfiguration.IsInCluster())
                return KubernetesClientConfiguration.InClusterConfig();
            if (environment("KUBECONFIG") is { Length: > 0 } variable)
                return KubernetesClientConfiguration.BuildConfigFromConfigFile(variable.Split(':', StringSplitOptions.RemoveEmptyEntries)[0]);
            var home = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".kube", "config");
            if (File.Exists(home))
                return KubernetesClientConfiguration.BuildConfigFromConfigFile(home);
        }
        catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or IOException or UnauthorizedAccessException or FormatException)
        {
            throw new EngineUnavailableException($"the Kubernetes connection settings cannot be read: {e.Message}", e);
        }

        throw new EngineUnavailableException(
            "no Kubernetes cluster to connect to: not running in a pod, no --kubeconfig given, KUBECONFIG unset and ~/.kube/config missing");
    }
}
