using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using k8s;
using k8s.Models;
using Longshore.Backends.Kubernetes;
using Longshore.Integration.Tests.Infrastructure;
using StackExchange.Redis;

namespace Longshore.Integration.Tests.Kubernetes;

/// <summary>
/// What only a cluster does, on the real kube-apiserver and kubelet: waiting for room with the scheduler's reason,
/// placement constraints on the pod spec, a queue of hostile payloads, replicas and exec health checks.
/// </summary>
[Collection(TestCluster.Collection)]
public sealed class KubernetesScenarioTests(KubernetesServerFixture fixture)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);
    private readonly LongshoreServer _server = fixture.Server;

    [KubernetesFact]
    public async Task MoreCpusThanTheNodeHas_WaitsWithTheSchedulersReason_AndAKillEndsIt()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("huge"), "sleep 600", cpus: 12, taskRetries: 2));

        var waiting = await _server.WaitForStateAsync(id, _ => true);
        await Eventually.WaitUntilAsync(async () => (waiting = await _server.GetRunAsync(id)).GetProperty("reason").GetString()?.Contains("Insufficient cpu", StringComparison.Ordinal) == true,
            TimeSpan.FromSeconds(30), () => waiting.ToString());
        Assert.Equal("TASK_STAGING", waiting.GetProperty("mesos_state").GetString());
        Assert.StartsWith("waiting for a node: 0/1 nodes are available", waiting.GetProperty("reason").GetString(), StringComparison.Ordinal);
        await Task.Delay(2000);
        Assert.Equal("TASK_STAGING", (await _server.GetRunAsync(id)).GetProperty("mesos_state").GetString());

        using (var kill = await _server.Http.PostAsync($"/tasks/{id}/kill/", null))
            Assert.Equal(HttpStatusCode.OK, kill.StatusCode);
        var ended = await _server.WaitForEndAsync(id, TimeSpan.FromSeconds(30));

        Assert.Equal("TASK_KILLED", ended.GetProperty("mesos_state").GetString());
        Assert.Equal(JsonValueKind.Null, ended.GetProperty("retried_as").ValueKind);
        await Eventually.WaitUntilAsync(async () => await fixture.Engine.CountRunAsync(id) == 0, TimeSpan.FromSeconds(30));
    }

    [KubernetesFact]
    public async Task Constraints_LandOnThePodSpec_AndAFittingPodRuns()
    {
        var family = Families.New("placed");
        var definition = (Dictionary<string, object?>)Tasks.Definition(family, "sleep 600", cpus: 0.1);
        definition["constraints"] = new[]
        {
            new[] { "kubernetes.io/os", "EQUAL", "linux" }, new[] { "rack", "UNEQUAL", "r9" }, new[] { "hostname", "LIKE", ".+" },
            new[] { "hostname", "UNIQUE" }, new[] { "kubernetes.io/hostname", "MAX_PER", "3" },
        };
        var id = await _server.PostTaskAsync(definition);
        await _server.WaitForStateAsync(id, state => state == "TASK_RUNNING", Wait);

        using var client = TestCluster.CreateClient();
        var spec = (await client.CoreV1.ReadNamespacedPodAsync(PodSpecs.PodName(id), fixture.Namespace)).Spec;
        await _server.Http.PostAsync($"/tasks/{id}/kill/", null);

        Assert.Equal("linux", spec.NodeSelector["kubernetes.io/os"]);
        var expressions = spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions;
        Assert.Contains(expressions, e => e is { Key: "rack", OperatorProperty: "NotIn" } && e.Values.SequenceEqual(["r9"]));
        var node = (await client.CoreV1.ListNodeAsync()).Items.Single().Metadata.Labels["kubernetes.io/hostname"];
        Assert.Contains(expressions, e => e is { Key: "kubernetes.io/hostname", OperatorProperty: "In" } && e.Values.SequenceEqual([node]));
        Assert.Equal("kubernetes.io/hostname", spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution.Single().TopologyKey);
        Assert.Equal(3, spec.TopologySpreadConstraints.Single().MaxSkew);
    }

    [KubernetesFact]
    public async Task ConstraintNoNodeLabelCanExpress_IsRefusedWith400NamingIt()
    {
        var definition = (Dictionary<string, object?>)Tasks.Definition(Families.New("badplace"), "true");
        definition["constraints"] = new[] { new[] { "rack", "EQUAL", "r1" }, new[] { "data center", "EQUAL", "x" } };

        using var response = await _server.Http.PostAsJsonAsync("/tasks/", definition);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("constraints[1][0]: 'data center' cannot be a Kubernetes node label key",
            JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [KubernetesFact]
    public async Task RedisQueueOfFiftyHostilePayloads_FiftyPodsEachPrintItsPayloadIntact()
    {
        var id = Families.New("hostile");
        var list = "list-" + id;
        var payloads = Enumerable.Range(0, 50).Select(i =>
            $"{i:D2} quote\" single' ; $(touch /tmp/pwned) `id` && exit 7 | \\ \\n {{\"json\": [1]}} ünïcode ${{HOME}} %s").ToArray();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(TestServices.RedisConfiguration);
        await redis.GetDatabase().ListRightPushAsync(list, payloads.Select(p => (RedisValue)p).ToArray());
        var queue = QueueDefinitions.Create(id, "printf '%s' \"$HIPPO_DATA\"; test ! -e /tmp/pwned", "redis",
            new Dictionary<string, string> { ["host"] = "127.0.0.1", ["port"] = TestServices.RedisConfiguration.Split(':')[1], ["name"] = list },
            new() { ["batch_size"] = 1, ["frequency_seconds"] = 1, ["max_concurrent"] = 50 });
        queue["cpus"] = 0.02;
        (await _server.Http.PostAsJsonAsync("/queues/", queue)).EnsureSuccessStatusCode();

        var runs = await _server.WaitForEndedAsync(id, 50, TimeSpan.FromMinutes(4));
        await _server.Http.GetAsync($"/queues/{id}/disable/");

        Assert.Equal(50, runs.Count);
        Assert.All(runs, run => Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString()));
        Assert.Equal(50, runs.Select(run => run.GetProperty("container_id").GetString()).Distinct().Count());
        Assert.Equal(payloads.Order(StringComparer.Ordinal), (await _server.StdoutsAsync(runs)).Order(StringComparer.Ordinal));
    }

    [KubernetesFact]
    public async Task CliTaskRunWait_FollowsThePodsOutput_AndExitsWithItsExitCode()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(["task", "run", TestEngine.Image, "--id", Families.New("kcli"), "--mem", "32", "--wait",
            "--server", $"http://127.0.0.1:{_server.Port}", "--", "echo from-a-pod; exit 7"]);

        Assert.Equal(7, exit);
        Assert.Contains("from-a-pod", stdout, StringComparison.Ordinal);
        Assert.Contains("TASK_FAILED", stderr, StringComparison.Ordinal);
    }

    [KubernetesFact]
    public async Task JobOfThreeReplicas_StaysAtThreeAfterAPodIsDeleted_AndAFailingExecHealthCheckReplacesOne()
    {
        var id = Families.New("kjob");
        var family = $"{id}-web-test";
        await _server.CreateAsync(Jobs.Job(id, Jobs.Group("web", 3)));
        await Eventually.WaitUntilAsync(async () => await fixture.Engine.CountFamilyAsync(family, runningOnly: true) == 3, Wait);
        var victim = (await TestCluster.PodsAsync(fixture.Namespace, PodSpecs.FamilyLabel, PodSpecs.LabelValue(family)))[0];

        using (var client = TestCluster.CreateClient())
            await client.CoreV1.DeleteNamespacedPodAsync(victim.Metadata.Name, fixture.Namespace, gracePeriodSeconds: 0);

        await Eventually.WaitUntilAsync(async () =>
        {
            var pods = await TestCluster.PodsAsync(fixture.Namespace, PodSpecs.FamilyLabel, PodSpecs.LabelValue(family));
            return pods.Count(p => p.Status?.Phase == "Running" && p.Metadata.DeletionTimestamp is null && p.Metadata.Name != victim.Metadata.Name) == 3;
        }, Wait);
        for (var i = 0; i < 5; i++)
        {
            await Task.Delay(1000);
            Assert.Equal(3, await fixture.Engine.CountFamilyAsync(family, runningOnly: true));
        }

        var check = new Dictionary<string, object> { ["type"] = "command", ["command"] = new[] { "test", "-f", "/tmp/healthy" }, ["interval_seconds"] = 1, ["failures"] = 2, ["timeout_seconds"] = 10 };
        var hc = Families.New("khealth");
        await _server.CreateAsync(Jobs.Job(hc, Jobs.Group("hc", 1, "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 600", check)));
        string? first = null;
        await Eventually.WaitUntilAsync(async () => (first = (await _server.RunsAsync($"{hc}-hc-test")).Select(r => r.GetProperty("mesos_id").GetString()).LastOrDefault()) is not null, Wait);
        var ended = await _server.WaitForEndAsync(first!, Wait);

        Assert.Equal("TASK_KILLED", ended.GetProperty("mesos_state").GetString());
        Assert.Contains("health check failed 2 times in a row", ended.GetProperty("reason").GetString(), StringComparison.Ordinal);
        await _server.Http.DeleteAsync($"/job/{id}");
        await _server.Http.DeleteAsync($"/job/{hc}");
    }
}

/// <summary>Crash safety, scale-out and start-up checks with their own servers and namespaces on the real cluster.</summary>
[Collection(TestCluster.Collection)]
public sealed class KubernetesRestartTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);

    [KubernetesFact]
    public async Task KillNineWithPodsRunningAndWaiting_ThenRestart_AdoptedNoneStartedTwice_AllEndRight()
    {
        var ns = await TestCluster.CreateNamespaceAsync("ls-crash");
        var shared = Directory.CreateTempSubdirectory("longshore-k8s-launches-").FullName;
        try
        {
            await using var server = await LongshoreServer.StartAsync([.. KubernetesServerFixture.Arguments(ns), "--allow-host-path", shared, "--retry-backoff-base", "0.2"]);
            var family = Families.New("kcrash");
            var volume = new Dictionary<string, string> { ["hostPath"] = shared, ["containerPath"] = "/shared", ["mode"] = "RW" };
            // Each start leaves a line in a host file (the pods run on this machine's kubelet): the cluster's own record of
            // how often each run really started. 0.6 cpus each: three fit on the two-core node, the fourth waits for room.
            var ids = new List<string>();
            for (var i = 0; i < 4; i++)
                ids.Add(await server.PostTaskAsync(Tasks.Definition(family, "echo $MESOS_TASK_ID >> /shared/launches; sleep 8; echo done", cpus: 0.6, volumes: [volume])));
            var failing = await server.PostTaskAsync(Tasks.Definition(family, "echo $MESOS_TASK_ID >> /shared/launches; sleep 6; exit 5", cpus: 0.1, volumes: [volume]));
            var probe = new KubernetesProbe(ns);
            await Eventually.WaitUntilAsync(async () => await probe.CountFamilyAsync(family, runningOnly: true) >= 4, Wait);
            var runs = await Task.WhenAll(ids.Select(id => server.GetRunAsync(id)));
            Assert.Contains(runs, run => run.GetProperty("reason").GetString()?.Contains("Insufficient cpu", StringComparison.Ordinal) == true);

            await server.KillHardAsync();
            // Pods outlive the server; some end while nobody watches.
            await Task.Delay(TimeSpan.FromSeconds(9));
            await server.StartAgainAsync();

            var ends = new List<JsonElement>();
            foreach (var id in ids)
                ends.Add(await server.WaitForEndAsync(id, Wait));
            var failed = await server.WaitForEndAsync(failing, Wait);

            Assert.All(ends, run => Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString()));
            Assert.All(ends, run => Assert.Equal(JsonValueKind.Null, run.GetProperty("retried_as").ValueKind));
            Assert.Equal("TASK_FAILED", failed.GetProperty("mesos_state").GetString());
            Assert.Equal(5, failed.GetProperty("exit_code").GetInt32());
            var launches = (await File.ReadAllLinesAsync(Path.Combine(shared, "launches"))).Where(line => line.Length > 0).ToList();
            Assert.Equal(ids.Append(failing).Order(), launches.Order());
            foreach (var id in ids)
                Assert.Contains("done", await server.Http.GetStringAsync($"/tasks/{id}/logs/"), StringComparison.Ordinal);
            await Eventually.WaitUntilAsync(async () => await probe.CountFamilyAsync(family) == 0, TimeSpan.FromSeconds(30));
        }
        finally
        {
            await TestCluster.DeleteNamespaceAsync(ns);
        }
    }

    [KubernetesFact]
    public async Task TwoInstancesOnPostgres_LeaderKilled_TheNewLeaderAdoptsThePods_AndOnlyTheLeaderWatches()
    {
        var ns = await TestCluster.CreateNamespaceAsync("ls-scale");
        var schema = TestServices.UniqueName("k8sscale");
        var shared = Directory.CreateTempSubdirectory("longshore-k8s-adopt-").FullName;
        var store = "postgres:" + await TestServices.CreatePostgresSchemaAsync(schema);
        var servers = new List<LongshoreServer>();
        try
        {
            for (var i = 0; i < 2; i++)
                servers.Add(await LongshoreServer.StartAsync([.. KubernetesServerFixture.Arguments(ns), "--store", store, "--reconcile-interval", "2", "--allow-host-path", shared]));
            var (leader, _) = await Leaders.WaitAsync(servers, Wait);
            var follower = servers.Single(s => s != leader);
            var family = Families.New("kadopt");
            var ids = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                // Each start appends to a host file (the pods run on this machine's kubelet): how often each run really started.
                ids.Add(await follower.PostTaskAsync(Tasks.Definition(family, "echo $MESOS_TASK_ID >> /shared/starts; echo started; sleep 12; echo finished", cpus: 0.1,
                    volumes: [new Dictionary<string, string> { ["hostPath"] = shared, ["containerPath"] = "/shared", ["mode"] = "RW" }])));
            }

            foreach (var id in ids)
                await follower.WaitForStateAsync(id, state => state == "TASK_RUNNING", Wait);
            var podsBefore = (await TestCluster.PodsAsync(ns, PodSpecs.FamilyLabel, PodSpecs.LabelValue(family))).Select(p => p.Metadata.Uid).Order().ToList();
            // A follower serves a running pod's output through the apiserver, without watching.
            Assert.Contains("started", JsonDocument.Parse(await follower.Http.GetStringAsync($"/tasks/{ids[0]}/logs/")).RootElement.GetProperty("stdout").GetString(), StringComparison.Ordinal);

            await leader.KillHardAsync();
            var (next, _) = await Leaders.WaitAsync(servers.Where(s => s != leader).ToList(), Wait);
            Assert.Same(follower, next);

            foreach (var id in ids)
                Assert.Equal("TASK_FINISHED", (await next.WaitForEndAsync(id, Wait)).GetProperty("mesos_state").GetString());
            foreach (var id in ids)
                Assert.Equal("started\nfinished\n", JsonDocument.Parse(await next.Http.GetStringAsync($"/tasks/{id}/logs/")).RootElement.GetProperty("stdout").GetString());
            Assert.Equal(3, podsBefore.Count);
            Assert.Equal(ids.Order(), (await File.ReadAllLinesAsync(Path.Combine(shared, "starts"))).Where(line => line.Length > 0).Order());
            Assert.Equal(3, (await next.RunsAsync(family)).Count);
        }
        finally
        {
            foreach (var server in servers)
                await server.DisposeAsync();
            await TestCluster.DeleteNamespaceAsync(ns);
            await TestServices.DropPostgresSchemaAsync(schema);
        }
    }

    [KubernetesFact]
    public async Task Reconcile_KeepsThePodOfALaunchJustMade_ForARunStagedAfterTheRead_AndRemovesAPodNoRunHolds()
    {
        var ns = await TestCluster.CreateNamespaceAsync("ls-orphan");
        try
        {
            var options = new KubernetesBackendOptions { Kubeconfig = TestCluster.Kubeconfig, Namespace = ns, InstanceId = "orphans" };
            var definition = new Longshore.Core.Tasks.TaskDefinition
            {
                Id = "orphan", Cmd = "sleep 60", Mem = 32, Cpus = 0.01,
                Container = new Longshore.Core.Tasks.ContainerSpec { Docker = new Longshore.Core.Tasks.DockerSpec { Image = "busybox" } },
            };
            // A pod no run holds any more: launched by another process (an earlier life of this instance).
            var stranger = Longshore.Core.Tasks.TaskRun.CreateFirst(definition, Guid.NewGuid(), DateTimeOffset.UtcNow);
            using (var earlier = new KubernetesBackend(options, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<KubernetesBackend>.Instance))
                await earlier.LaunchAsync(stranger);

            // This process launches a run the reconciliation's list of active runs does not hold (the scheduler staged it after
            // reading them: reconciliations run beside its passes).
            using var backend = new KubernetesBackend(options, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<KubernetesBackend>.Instance);
            var fresh = Longshore.Core.Tasks.TaskRun.CreateFirst(definition, Guid.NewGuid(), DateTimeOffset.UtcNow);
            await backend.LaunchAsync(fresh);

            var result = await backend.ReconcileAsync([]);

            Assert.Equal(1, result.OrphansRemoved);
            await Eventually.WaitUntilAsync(async () => (await TestCluster.PodsAsync(ns, PodSpecs.RunLabel, PodSpecs.PodName(stranger.MesosId))).Count == 0, Wait);
            Assert.Single(await TestCluster.PodsAsync(ns, PodSpecs.RunLabel, PodSpecs.PodName(fresh.MesosId)));
        }
        finally
        {
            await TestCluster.DeleteNamespaceAsync(ns);
        }
    }

    [KubernetesFact]
    public async Task IdentityThatMayNotRunPods_ServerRefusesToStart_WithOneLineNamingWhatIsMissing()
    {
        var ns = await TestCluster.CreateNamespaceAsync("ls-rbac");
        var kubeconfig = Path.Combine(Path.GetTempPath(), $"kubeconfig-{Guid.NewGuid():N}");
        try
        {
            using var client = TestCluster.CreateClient();
            await client.CoreV1.CreateNamespacedServiceAccountAsync(new V1ServiceAccount { Metadata = new V1ObjectMeta { Name = "nobody" } }, ns);
            await File.WriteAllTextAsync(kubeconfig, await TestCluster.ServiceAccountKubeconfigAsync(ns, "nobody"));

            var (exit, _, stderr) = await CliProcess.RunAsync(["server", "--data", Directory.CreateTempSubdirectory("ls-rbac-").FullName, "--urls", "http://127.0.0.1:0",
                "--engine", "kubernetes", "--kubeconfig", kubeconfig, "--kube-namespace", ns]);
            var (unreachableExit, _, unreachable) = await CliProcess.RunAsync(["server", "--data", Directory.CreateTempSubdirectory("ls-rbac-").FullName,
                "--urls", "http://127.0.0.1:0", "--engine", "kubernetes", "--kubeconfig", kubeconfig.Replace("kubeconfig-", "missing-", StringComparison.Ordinal)]);

            Assert.Equal(1, exit);
            var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains($"may not create pods, list pods, watch pods, delete pods, get pods/log, create pods/exec in namespace '{ns}'", line, StringComparison.Ordinal);
                        var token = System.Text.RegularExpressions.Regex.Match(await File.ReadAllTextAsync(kubeconfig), "token: \"([^\"]+)\"").Groups[1].Value;
            Assert.DoesNotContain(token, stderr, StringComparison.Ordinal);
            Assert.Equal(2, unreachableExit);
            Assert.Contains("kubeconfig:", unreachable, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(kubeconfig);
            await TestCluster.DeleteNamespaceAsync(ns);
        }
    }
}

/// <summary>The Kubernetes settings' checks, without a cluster.</summary>
public sealed class KubernetesOptionsTests
{
    [Fact]
    public void Validate_BadKubernetesSettings_NamesEachSetting()
    {
        var errors = new Longshore.Server.Hosting.LongshoreServerOptions
        {
            Engine = "kubernetes",
            Kubernetes = new KubernetesBackendOptions { Namespace = "Not_A_Label", Kubeconfig = "/nonexistent/kubeconfig", ServiceAccount = "Bad Account", ImagePullGrace = TimeSpan.FromSeconds(-1) },
        }.Validate();
        var fine = new Longshore.Server.Hosting.LongshoreServerOptions { Engine = "kubernetes", Kubernetes = new KubernetesBackendOptions { Namespace = "batch", ServiceAccount = "tasks" } }.Validate();

        Assert.Equal(["kube-namespace:", "kube-service-account:", "kubeconfig:", "kube-image-pull-grace:"], errors.Select(e => e[..(e.IndexOf(':', StringComparison.Ordinal) + 1)]));
        Assert.Empty(fine);
    }
}
