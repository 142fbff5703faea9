using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using k8s;
using k8s.Models;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Kubernetes;

/// <summary>
/// Longshore deployed from deploy/kubernetes into the real cluster it schedules on, with only what this cluster needs
/// patched in by an overlay: one replica, the suite's PostgreSQL as store, and host networking on 127.0.0.1 (the
/// test cluster has no kube-proxy and no DNS, so no Service or ClusterIP has a data path: the pod reaches the apiserver,
/// PostgreSQL and the test reaches the pod on loopback). Everything else is the shipped manifests: the image, the
/// service account and its Role, the Secret's keys, the probes, the in-cluster configuration.
/// </summary>
[Collection(TestCluster.Collection)]
public sealed class InClusterTests
{
    private const string ServerPods = "app.kubernetes.io/component=server";

    [KubernetesFact]
    public async Task DeployedFromTheManifests_RunsKillsAndAdoptsTaskPods_WithItsServiceAccount_AcrossARestartOfItsPod()
    {
        await Artifacts.ImageInClusterAsync();
        var ns = await TestCluster.CreateNamespaceAsync("ls-incluster");
        var schema = TestServices.UniqueName("incluster");
        var port = LongshoreServer.FreePort();
        var overlay = DeployManifestTests.Overlay(ns, replicas: 1, InClusterPatch(port, await ApiserverPortAsync()));
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var client = TestCluster.CreateClient();
        try
        {
            await client.CoreV1.CreateNamespacedSecretAsync(new V1Secret
            {
                Metadata = new V1ObjectMeta { Name = "longshore" },
                StringData = new Dictionary<string, string>
                {
                    ["store"] = "postgres:" + await TestServices.CreatePostgresSchemaAsync(schema),
                    ["tokens"] = $"operator:test:{token}",
                    ["secrets-key"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
                },
            }, ns);
            var (exit, output) = await DeployManifestTests.KubectlAsync("apply", "-k", overlay);
            Assert.True(exit == 0, output);

            var first = await LeadingAsync(http, ns, instanceOtherThan: null);
            var firstPod = Assert.Single(await TestCluster.PodsAsync(ns, "app.kubernetes.io/component", "server")).Metadata.Name;

            // A task runs as a pod that the Longshore in the cluster creates with its service account, and fails with its exit code.
            var failing = await PostTaskAsync(http, ns, "echo from a pod the in-cluster Longshore made; exit 3");
            var failed = await WaitForStateAsync(http, ns, failing, TestStates.IsTerminal, TimeSpan.FromSeconds(90));
            Assert.Equal("TASK_FAILED", failed.GetProperty("mesos_state").GetString());
            Assert.Equal(3, failed.GetProperty("exit_code").GetInt32());
            Assert.Contains("from a pod the in-cluster Longshore made", await http.GetStringAsync($"/tasks/{failing}/logs/"), StringComparison.Ordinal);

            // A kill deletes the pod: TASK_KILLED, and the pod is gone.
            var sleeper = await PostTaskAsync(http, ns, "sleep 600");
            await WaitForStateAsync(http, ns, sleeper, state => state == "TASK_RUNNING", TimeSpan.FromSeconds(90));
            Assert.Single(await TaskPodsAsync(ns));
            using (var kill = await http.PostAsync($"/tasks/{sleeper}/kill/", null))
                Assert.Equal(HttpStatusCode.OK, kill.StatusCode);
            Assert.Equal("TASK_KILLED", (await WaitForStateAsync(http, ns, sleeper, TestStates.IsTerminal, TimeSpan.FromSeconds(60))).GetProperty("mesos_state").GetString());
            await Eventually.WaitUntilAsync(async () => (await TaskPodsAsync(ns)).Count == 0, TimeSpan.FromSeconds(60));

            // Longshore's own pod deleted while a task runs: the Deployment starts another, which takes the lead from the
            // shared store, adopts the running pod, and ends its run with its whole output, started once.
            var family = Families.New("incluster");
            var survivor = await PostTaskAsync(http, ns, "echo before the restart; sleep 25; echo after the restart", family);
            await WaitForStateAsync(http, ns, survivor, state => state == "TASK_RUNNING", TimeSpan.FromSeconds(90));
            await client.CoreV1.DeleteNamespacedPodAsync(firstPod, ns);
            await Eventually.WaitUntilAsync(async () => (await TestCluster.PodsAsync(ns, "app.kubernetes.io/component", "server")).Any(p => p.Metadata.Name != firstPod),
                TimeSpan.FromSeconds(60));
            var second = await LeadingAsync(http, ns, instanceOtherThan: first);
            Assert.NotEqual(first, second);

            var finished = await WaitForStateAsync(http, ns, survivor, TestStates.IsTerminal, TimeSpan.FromSeconds(90));
            Assert.Equal("TASK_FINISHED", finished.GetProperty("mesos_state").GetString());
            var log = await http.GetStringAsync($"/tasks/{survivor}/logs/");
            Assert.Contains("before the restart", log, StringComparison.Ordinal);
            Assert.Contains("after the restart", log, StringComparison.Ordinal);
            var runs = JsonDocument.Parse(await http.GetStringAsync($"/tasks/?id={family}&limit=100")).RootElement;
            Assert.Equal(1, runs.GetArrayLength());
            // What the first pod recorded is still there.
            Assert.Equal("TASK_FAILED", (await GetRunAsync(http, failing)).GetProperty("mesos_state").GetString());
            Assert.Equal("TASK_KILLED", (await GetRunAsync(http, sleeper)).GetProperty("mesos_state").GetString());
            await Eventually.WaitUntilAsync(async () => (await TaskPodsAsync(ns)).Count == 0, TimeSpan.FromSeconds(60));
        }
        finally
        {
            Directory.Delete(overlay, recursive: true);
            await TestCluster.DeleteNamespaceAsync(ns);
            await TestServices.DropPostgresSchemaAsync(schema);
        }
    }

    /// <summary>
    /// What this cluster needs over the shipped Deployment, as JSON patch operations. The <c>test</c> operations make the
    /// overlay fail, saying where, if the base's args or port move.
    /// </summary>
    private static string InClusterPatch(int port, int apiserverPort) => $$$"""
        - {op: test, path: /spec/template/spec/containers/0/args/1, value: "--urls=http://0.0.0.0:8080"}
        - {op: replace, path: /spec/template/spec/containers/0/args/1, value: "--urls=http://127.0.0.1:{{{port}}}"}
        - {op: test, path: /spec/template/spec/containers/0/ports/0/name, value: http}
        - {op: replace, path: /spec/template/spec/containers/0/ports/0/containerPort, value: {{{port}}}}
        - {op: add, path: /spec/template/spec/hostNetwork, value: true}
        - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: KUBERNETES_SERVICE_HOST, value: 127.0.0.1}}
        - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: KUBERNETES_SERVICE_PORT, value: "{{{apiserverPort}}}"}}
        - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
        - {op: add, path: /spec/template/spec/containers/0/readinessProbe/httpGet/host, value: 127.0.0.1}
        - {op: add, path: /spec/template/spec/containers/0/livenessProbe/tcpSocket/host, value: 127.0.0.1}
        """;

    private static async Task<int> ApiserverPortAsync()
    {
        var cluster = (await KubernetesClientConfiguration.LoadKubeConfigAsync(TestCluster.Kubeconfig!)).Clusters.First().ClusterEndpoint;
        return new Uri(cluster.Server).Port;
    }

    /// <summary>Waits until the server on the port is healthy and leads, as an instance other than the one given; returns its instance.</summary>
    private static async Task<string> LeadingAsync(HttpClient http, string ns, string? instanceOtherThan)
    {
        var watch = Stopwatch.StartNew();
        string last = "no answer";
        while (watch.Elapsed < TimeSpan.FromSeconds(120))
        {
            try
            {
                using var response = await http.GetAsync("/healthz");
                last = await response.Content.ReadAsStringAsync();
                var health = JsonDocument.Parse(last).RootElement;
                var instance = health.GetProperty("instance").GetString();
                if (health.GetProperty("status").GetString() == "ok" && health.GetProperty("leader").GetBoolean() && instance != instanceOtherThan)
                    return instance!;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
            {
                last = e.Message;
            }

            await Task.Delay(500);
        }

        throw new TimeoutException($"no leading Longshore answered on {http.BaseAddress} within 120 s: {last}\n{await DiagnosticsAsync(ns)}");
    }

    private static async Task<string> PostTaskAsync(HttpClient http, string ns, string cmd, string? family = null)
    {
        using var response = await http.PostAsJsonAsync("/tasks/", Tasks.Definition(family ?? Families.New("incluster"), cmd, cpus: 0.1, image: "localhost/busybox:latest"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"POST /tasks/ gave {(int)response.StatusCode}: {body}\n{await DiagnosticsAsync(ns)}");
        return JsonDocument.Parse(body).RootElement.GetProperty("mesos_id").GetString()!;
    }

    private static async Task<JsonElement> GetRunAsync(HttpClient http, string id) =>
        JsonDocument.Parse(await http.GetStringAsync($"/tasks/{id}/")).RootElement.Clone();

    private static async Task<JsonElement> WaitForStateAsync(HttpClient http, string ns, string id, Func<string, bool> done, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var run = await GetRunAsync(http, id);
            if (done(run.GetProperty("mesos_state").GetString()!))
                return run;
            if (watch.Elapsed > timeout)
                throw new TimeoutException($"{id} stayed {run.GetProperty("mesos_state")} for {timeout}: {run}\n{await DiagnosticsAsync(ns)}");
            await Task.Delay(250);
        }
    }

    private static Task<IList<V1Pod>> TaskPodsAsync(string ns) => TestCluster.PodsAsync(ns, "app.kubernetes.io/managed-by", "longshore");

    /// <summary>What a failure message needs: the namespace's pods and events, and the Longshore pods' logs.</summary>
    private static async Task<string> DiagnosticsAsync(string ns)
    {
        var (_, pods) = await DeployManifestTests.KubectlAsync("-n", ns, "get", "pods,events", "-o", "wide");
        var (_, logs) = await DeployManifestTests.KubectlAsync("-n", ns, "logs", "-l", ServerPods, "--tail=40");
        return $"{pods}\n--- Longshore's log:\n{logs}";
    }
}
