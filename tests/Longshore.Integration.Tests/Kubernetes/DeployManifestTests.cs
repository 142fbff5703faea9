using System.Diagnostics;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Kubernetes;

/// <summary>
/// deploy/kubernetes against the real apiserver: the kustomization passes a server-side dry run, and the Role it grants
/// is enough for Longshore to run a task with nothing but its service account's token.
/// </summary>
[Collection(TestCluster.Collection)]
public sealed class DeployManifestTests
{
    private static readonly string Manifests = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "deploy", "kubernetes"));

    [KubernetesFact]
    public async Task Kustomization_PassesAServerSideDryRun_ForEveryObject()
    {
        // A server-side dry run checks each object against the namespace it would go to, so that one must exist.
        var ns = await TestCluster.CreateNamespaceAsync("ls-dryrun");
        var overlay = Overlay(ns, replicas: 2);
        try
        {
            var (exit, output) = await KubectlAsync("apply", "-f", await RenderAsync(overlay), "--dry-run=server");

            Assert.True(exit == 0, output);
            foreach (var created in (string[])["serviceaccount/longshore", "role.rbac.authorization.k8s.io/longshore",
                "rolebinding.rbac.authorization.k8s.io/longshore", "service/longshore", "deployment.apps/longshore"])
                Assert.Contains(created, output, StringComparison.Ordinal);
            Assert.Contains("(server dry run)", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(overlay, recursive: true);
            await TestCluster.DeleteNamespaceAsync(ns);
        }
    }

    [KubernetesFact]
    public async Task ManifestsRole_IsEnoughForLongshore_RunningATaskWithTheServiceAccountToken()
    {
        var ns = await TestCluster.CreateNamespaceAsync("ls-rbac");
        var overlay = Overlay(ns, replicas: 0);
        var kubeconfig = Path.Combine(Path.GetTempPath(), $"kubeconfig-{Guid.NewGuid():N}");
        try
        {
            var (exit, output) = await KubectlAsync("apply", "-f", await RenderAsync(overlay));
            Assert.True(exit == 0, output);
            await File.WriteAllTextAsync(kubeconfig, await TestCluster.ServiceAccountKubeconfigAsync(ns, "longshore"));

            await using var server = await LongshoreServer.StartAsync("--engine", "kubernetes", "--kubeconfig", kubeconfig, "--kube-namespace", ns);
            var id = await server.PostTaskAsync(Tasks.Definition(Families.New("rbac"), "echo as the service account", cpus: 0.1));
            var run = await server.WaitForEndAsync(id, TimeSpan.FromSeconds(90));

            Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString());
            Assert.Contains("as the service account", await server.Http.GetStringAsync($"/tasks/{id}/logs/"), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(kubeconfig);
            Directory.Delete(overlay, recursive: true);
            await TestCluster.DeleteNamespaceAsync(ns);
        }
    }

    /// <summary>
    /// The shipped kustomization as a base, moved to namespace <paramref name="ns"/> (a folder of its own; delete it after).
    /// Written for kustomize 2.0 too (Debian's kubectl 1.20): <c>bases</c>, a strategic merge patch, and
    /// <paramref name="deploymentJsonPatch"/> when given (JSON 6902 operations in YAML, applied to the Deployment).
    /// </summary>
    public static string Overlay(string ns, int replicas, string? deploymentJsonPatch = null)
    {
        var folder = Directory.CreateTempSubdirectory("longshore-overlay-").FullName;
        File.CreateSymbolicLink(Path.Combine(folder, "base"), Manifests);
        File.WriteAllText(Path.Combine(folder, "replicas.yaml"), $$"""
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: longshore}
            spec: {replicas: {{replicas}}}
            """);
        File.WriteAllText(Path.Combine(folder, "kustomization.yaml"), $"""
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            namespace: {ns}
            bases: [base]
            patchesStrategicMerge: [replicas.yaml]
            """);
        if (deploymentJsonPatch is not null)
        {
            File.WriteAllText(Path.Combine(folder, "deployment-patch.yaml"), deploymentJsonPatch);
            File.AppendAllText(Path.Combine(folder, "kustomization.yaml"), """

                patchesJson6902:
                  - target: {group: apps, version: v1, kind: Deployment, name: longshore}
                    path: deployment-patch.yaml
                """);
        }

        return folder;
    }

    /// <summary>
    /// The overlay rendered by kubectl's kustomize, without its Namespace object (kustomize versions differ on renaming it;
    /// the test's namespace exists already), written to a file for <c>kubectl apply -f</c>.
    /// </summary>
    public static async Task<string> RenderAsync(string overlay)
    {
        var (exit, output) = await KubectlAsync("kustomize", overlay);
        Assert.True(exit == 0, output);
        var documents = output.Split("\n---\n").Where(doc => !doc.Contains("\nkind: Namespace\n", StringComparison.Ordinal) && !doc.StartsWith("kind: Namespace\n", StringComparison.Ordinal));
        var file = Path.Combine(overlay, "rendered.yaml");
        await File.WriteAllTextAsync(file, string.Join("\n---\n", documents));
        return file;
    }

    public static async Task<(int ExitCode, string Output)> KubectlAsync(params string[] args)
    {
        var info = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["--kubeconfig", TestCluster.Kubeconfig!, .. args])
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + stderr);
    }
}
