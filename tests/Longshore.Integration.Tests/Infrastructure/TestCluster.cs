using k8s;
using k8s.Models;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>
/// The real Kubernetes cluster the suite runs against (scripts/setup-kubernetes.sh starts one and exports
/// <c>LONGSHORE_TEST_KUBECONFIG</c>; CI always has it), and a namespace of its own per fixture.
/// </summary>
public static class TestCluster
{
    /// <summary>Kubernetes test classes run one at a time: the one node has two cores for every pod.</summary>
    public const string Collection = "kubernetes";

    public const string NotConfigured = "no Kubernetes cluster configured: run scripts/setup-kubernetes.sh and export LONGSHORE_TEST_KUBECONFIG (scripts/test.sh does)";

    public static string? Kubeconfig { get; } = Environment.GetEnvironmentVariable("LONGSHORE_TEST_KUBECONFIG") is { Length: > 0 } path ? path : null;

    public static k8s.Kubernetes CreateClient() => new(KubernetesClientConfiguration.BuildConfigFromConfigFile(Kubeconfig!));

    public static async Task<string> CreateNamespaceAsync(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];
        using var client = CreateClient();
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = name } });
        // Pods are admitted once the namespace's default service account exists.
        await Eventually.WaitUntilAsync(async () => (await client.CoreV1.ListNamespacedServiceAccountAsync(name)).Items.Any(a => a.Metadata.Name == "default"),
            TimeSpan.FromSeconds(30));
        return name;
    }

    /// <summary>
    /// Labels every node <c>cluster=local</c>: a job's <c>cluster</c> is a placement constraint on that node label, and the
    /// test jobs say <c>local</c> (a real cluster labels its nodes the same way).
    /// </summary>
    public static async Task LabelNodesAsync()
    {
        using var client = CreateClient();
        foreach (var node in (await client.CoreV1.ListNodeAsync()).Items)
            await client.CoreV1.PatchNodeAsync(new V1Patch("""{"metadata":{"labels":{"cluster":"local"}}}""", V1Patch.PatchType.MergePatch), node.Metadata.Name);
    }

    public static async Task DeleteNamespaceAsync(string name)
    {
        using var client = CreateClient();
        await client.CoreV1.DeleteNamespaceAsync(name, gracePeriodSeconds: 0);
    }

    /// <summary>A kubeconfig that authenticates as a service account with its token (the secret Kubernetes 1.20 mints for it).</summary>
    public static async Task<string> ServiceAccountKubeconfigAsync(string ns, string account)
    {
        using var client = CreateClient();
        string? token = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            var secret = (await client.CoreV1.ListNamespacedSecretAsync(ns)).Items.FirstOrDefault(s => s.Type == "kubernetes.io/service-account-token"
                && s.Metadata.Annotations?["kubernetes.io/service-account.name"] == account);
            token = secret is null ? null : System.Text.Encoding.UTF8.GetString(secret.Data["token"]);
            return token is not null;
        }, TimeSpan.FromSeconds(30));
        var admin = (await KubernetesClientConfiguration.LoadKubeConfigAsync(Kubeconfig!)).Clusters.First().ClusterEndpoint;
        return $$"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: test
              cluster: {server: "{{admin.Server}}", certificate-authority-data: "{{admin.CertificateAuthorityData}}"}
            users:
            - name: {{account}}
              user: {token: "{{token}}"}
            contexts:
            - name: test
              context: {cluster: test, user: {{account}}}
            current-context: test
            """;
    }

    /// <summary>Pods in the namespace carrying the label.</summary>
    public static async Task<IList<V1Pod>> PodsAsync(string ns, string label, string value)
    {
        using var client = CreateClient();
        return (await client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{label}={value}")).Items;
    }
}

/// <summary>A fact that needs the test cluster: skipped, saying why, only when none is configured.</summary>
public sealed class KubernetesFactAttribute : FactAttribute
{
    public KubernetesFactAttribute()
    {
        if (TestCluster.Kubeconfig is null)
            Skip = TestCluster.NotConfigured;
    }
}

/// <summary>Marks a class of inherited engine scenarios as needing the test cluster (see <see cref="EngineFactAttribute"/>).</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class NeedsKubernetesAttribute : Attribute;

/// <summary>
/// A scenario of an engine compliance suite. It runs in every class that inherits it, and is skipped, saying why, in
/// a class marked <see cref="NeedsKubernetesAttribute"/> when no cluster is configured (xunit 2 has no dynamic skip, and
/// an inherited [Fact] cannot know its subclass).
/// </summary>
[XunitTestCaseDiscoverer("Longshore.Integration.Tests.Infrastructure.EngineFactDiscoverer", "Longshore.Integration.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class EngineFactAttribute : FactAttribute;

public sealed class EngineFactDiscoverer(IMessageSink diagnostics) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        var display = discoveryOptions.MethodDisplayOrDefault();
        var displayOptions = discoveryOptions.MethodDisplayOptionsOrDefault();
        if (TestCluster.Kubeconfig is null && testMethod.TestClass.Class.GetCustomAttributes(typeof(NeedsKubernetesAttribute)).Any())
            return [new XunitSkippedDataRowTestCase(diagnostics, display, displayOptions, testMethod, TestCluster.NotConfigured)];
        return [new XunitTestCase(diagnostics, display, displayOptions, testMethod)];
    }
}
