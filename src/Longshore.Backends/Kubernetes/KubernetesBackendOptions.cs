using System.Globalization;
using System.Text.RegularExpressions;

namespace Longshore.Backends.Kubernetes;

/// <summary>How the Kubernetes backend reaches the cluster and what its pods look like.</summary>
public sealed partial record KubernetesBackendOptions
{
    /// <summary>
    /// A kubeconfig file. Null: the pod's own service account when running in a cluster, else <c>KUBECONFIG</c>, else
    /// <c>~/.kube/config</c>.
    /// </summary>
    public string? Kubeconfig { get; init; }

    /// <summary>Namespace the pods are created, watched and deleted in. Default <c>default</c>.</summary>
    public string Namespace { get; init; } = "default";

    /// <summary>Service account the task pods run as; null: the namespace's default, with no API token mounted.</summary>
    public string? ServiceAccount { get; init; }

    /// <summary>Label value that marks pods as this store's, so several Longshores can share one namespace.</summary>
    public string InstanceId { get; init; } = "";

    /// <summary>Most bytes of output kept per run once its pod is gone (the tail). Default 1 MiB.</summary>
    public int LogCapBytes { get; init; } = 1024 * 1024;

    /// <summary>
    /// How long an image may keep failing to pull (the kubelet retrying with backoff) before the run ends TASK_FAILED.
    /// Errors that say the image does not exist or its name is invalid end it at once. Default 60 s.
    /// </summary>
    public TimeSpan ImagePullGrace { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Host ports handed out for a task's <c>ports</c>, inclusive. Default 31000..32000, as Mesos agents offer.</summary>
    public int PortRangeStart { get; init; } = 31000;

    public int PortRangeEnd { get; init; } = 32000;

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    /// <summary>Every failing setting, named as its command-line option.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Namespace.Length > 63 || !DnsLabel().IsMatch(Namespace))
            errors.Add($"kube-namespace: must be a DNS label (lowercase letters, digits and '-', at most 63), got '{Namespace}'");
        if (ServiceAccount is not null && (ServiceAccount.Length > 253 || !DnsLabel().IsMatch(ServiceAccount.Replace('.', '-'))))
            errors.Add($"kube-service-account: must be a DNS subdomain name such as longshore-tasks, got '{ServiceAccount}'");
        if (Kubeconfig is not null && !File.Exists(Kubeconfig))
            errors.Add($"kubeconfig: '{Kubeconfig}' does not exist");
        if (ImagePullGrace < TimeSpan.Zero || ImagePullGrace > TimeSpan.FromHours(1))
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"kube-image-pull-grace: must be between 0 and 3600 seconds, got {ImagePullGrace.TotalSeconds}"));
        if (PortRangeStart < 1 || PortRangeEnd > 65535 || PortRangeEnd - PortRangeStart < 16)
            errors.Add($"kube-port-range: must hold at least 17 ports within 1..65535, got {PortRangeStart}..{PortRangeEnd}");
        return errors;
    }
}
