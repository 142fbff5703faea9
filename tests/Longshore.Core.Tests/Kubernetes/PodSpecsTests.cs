using System.Text.RegularExpressions;
using Longshore.Backends.Kubernetes;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Kubernetes;

public sealed class PodSpecsTests
{
    private static readonly KubernetesBackendOptions Options = new() { Namespace = "batch", InstanceId = "a1b2c3d4e5f6" };

    private static TaskRun Run(string family = "hello", string? cmd = "echo hi", double cpus = 0.25, double mem = 48, string network = "BRIDGE",
        int ports = 0, List<List<string>>? constraints = null, bool forcePull = false, List<VolumeSpec>? volumes = null, Dictionary<string, string>? env = null) =>
        TaskRun.CreateFirst(new TaskDefinition
        {
            Id = family,
            Cmd = cmd,
            Cpus = cpus,
            Mem = mem,
            Ports = ports,
            Env = env,
            Constraints = constraints,
            Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox", Network = network, ForcePullImage = forcePull }, Volumes = volumes },
        }, Guid.NewGuid(), TestClock.Now());

    [Theory]
    [InlineData("hello")]
    [InlineData("Queue_With.Dots-and_UNDERSCORES")]
    [InlineData("a-very-long-family-id-that-goes-on-and-on-well-beyond-what-a-label-may-hold-0123456789")]
    public void PodName_AnyFamily_IsADnsLabelOfAtMost63_AndTheSameForTheSameRun(string family)
    {
        var run = Run(family);

        var name = PodSpecs.PodName(run.MesosId);

        Assert.Matches(new Regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), name);
        Assert.InRange(name.Length, 1, 63);
        Assert.Equal(name, PodSpecs.PodName(run.MesosId));
        Assert.NotEqual(name, PodSpecs.PodName(Run(family).MesosId));
    }

    [Fact]
    public void PodName_IdNotEndingInAUuid_IsStillDistinctPerId()
    {
        Assert.NotEqual(PodSpecs.PodName("handover.1"), PodSpecs.PodName("handover.2"));
        Assert.StartsWith("ls-handover-", PodSpecs.PodName("handover.1"), StringComparison.Ordinal);
    }

    [Fact]
    public void Build_Task_IsOneNeverRestartedPodWithRequestsEqualToLimits_LabelsAndTheRunIdAnnotation()
    {
        var run = Run(env: new Dictionary<string, string> { ["HIPPO_DATA"] = "quote\" $(x) `y`\n" });

        var pod = PodSpecs.Build(run, Options);

        Assert.Equal("Never", pod.Spec.RestartPolicy);
        Assert.Equal("batch", pod.Metadata.NamespaceProperty);
        var container = Assert.Single(pod.Spec.Containers);
        Assert.Equal(["/bin/sh", "-c", "echo hi"], container.Command);
        Assert.Equal("IfNotPresent", container.ImagePullPolicy);
        Assert.Equal("250m", container.Resources.Limits["cpu"].ToString());
        Assert.Equal((48L * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture), container.Resources.Limits["memory"].ToString());
        Assert.Equal(container.Resources.Limits["cpu"], container.Resources.Requests["cpu"]);
        Assert.Equal(container.Resources.Limits["memory"], container.Resources.Requests["memory"]);
        var env = container.Env.ToDictionary(e => e.Name, e => e.Value);
        Assert.Equal("quote\" $(x) `y`\n", env["HIPPO_DATA"]);
        Assert.Equal(run.MesosId, env["MESOS_TASK_ID"]);
        Assert.Equal("1", env["LONGSHORE_ATTEMPT"]);
        Assert.Equal("longshore", pod.Metadata.Labels[PodSpecs.ManagedByLabel]);
        Assert.Equal("a1b2c3d4e5f6", pod.Metadata.Labels[PodSpecs.InstanceLabel]);
        Assert.Equal(pod.Metadata.Name, pod.Metadata.Labels[PodSpecs.RunLabel]);
        Assert.Equal("hello", pod.Metadata.Labels[PodSpecs.FamilyLabel]);
        Assert.Equal(run.MesosId, pod.Metadata.Annotations[PodSpecs.MesosIdAnnotation]);
        Assert.False(pod.Spec.AutomountServiceAccountToken);
        Assert.Null(pod.Spec.HostNetwork);
        Assert.False(container.SecurityContext.AllowPrivilegeEscalation);
    }

    [Fact]
    public void Build_HostNetworkForcePullPortsAndVolumes_LandOnTheSpec()
    {
        var run = Run(network: "HOST", forcePull: true, ports: 2, cmd: null,
            volumes: [new VolumeSpec { HostPath = "/srv/data", ContainerPath = "/data", Mode = "RO" }, new VolumeSpec { HostPath = "/srv/out", ContainerPath = "/out" }]);

        var pod = PodSpecs.Build(run, Options with { ServiceAccount = "tasks" });

        var container = pod.Spec.Containers[0];
        Assert.True(pod.Spec.HostNetwork);
        Assert.Equal("Always", container.ImagePullPolicy);
        Assert.Null(container.Command);
        Assert.Equal("tasks", pod.Spec.ServiceAccountName);
        Assert.Null(pod.Spec.AutomountServiceAccountToken);
        Assert.Equal(2, container.Ports.Count);
        Assert.All(container.Ports, p => Assert.Equal(p.ContainerPort, p.HostPort));
        Assert.All(container.Ports, p => Assert.InRange(p.HostPort!.Value, 31000, 32000));
        var env = container.Env.ToDictionary(e => e.Name, e => e.Value);
        Assert.Equal(container.Ports[0].HostPort.ToString(), env["PORT0"]);
        Assert.Equal($"{container.Ports[0].HostPort},{container.Ports[1].HostPort}", env["PORTS"]);
        Assert.Equal(PodSpecs.HostPorts(run.MesosId, 2, Options), container.Ports.Select(p => p.HostPort!.Value));
        Assert.Equal(["/srv/data", "/srv/out"], pod.Spec.Volumes.Select(v => v.HostPath.Path));
        Assert.Equal([true, false], container.VolumeMounts.Select(m => m.ReadOnlyProperty == true));
        Assert.Equal(["/data", "/out"], container.VolumeMounts.Select(m => m.MountPath));
    }

    [Fact]
    public void Build_Constraints_MapOntoNodeSelectorAffinityAndTopologySpread()
    {
        var run = Run("placed", constraints:
        [
            ["rack", "EQUAL", "r1"], ["zone", "UNEQUAL", "east"], ["disk", "LIKE", "ssd.*"], ["hostname", "UNLIKE", "old-.*"],
            ["hostname", "UNIQUE"], ["topology.kubernetes.io/zone", "MAX_PER", "2"], ["rack", "GROUP_BY"], ["pool", "CLUSTER"],
        ]);
        var nodes = new Dictionary<string, IReadOnlySet<string>>
        {
            ["disk"] = new HashSet<string> { "ssd-fast", "ssd", "hdd" },
            ["kubernetes.io/hostname"] = new HashSet<string> { "old-1", "new-1", "old-2" },
        };

        var spec = PodSpecs.Build(run, Options, nodes).Spec;

        Assert.Equal("r1", spec.NodeSelector["rack"]);
        var expressions = Assert.Single(spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms).MatchExpressions;
        Assert.Contains(expressions, e => e.Key == "zone" && e.OperatorProperty == "NotIn" && e.Values.SequenceEqual(["east"]));
        Assert.Contains(expressions, e => e.Key == "disk" && e.OperatorProperty == "In" && e.Values.SequenceEqual(["ssd", "ssd-fast"]));
        Assert.Contains(expressions, e => e.Key == "kubernetes.io/hostname" && e.OperatorProperty == "NotIn" && e.Values.SequenceEqual(["old-1", "old-2"]));
        var anti = Assert.Single(spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution);
        Assert.Equal("kubernetes.io/hostname", anti.TopologyKey);
        Assert.Equal("placed", anti.LabelSelector.MatchLabels[PodSpecs.FamilyLabel]);
        Assert.Equal("pool", Assert.Single(spec.Affinity.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution).TopologyKey);
        Assert.Contains(spec.TopologySpreadConstraints, t => t.TopologyKey == "topology.kubernetes.io/zone" && t.MaxSkew == 2 && t.WhenUnsatisfiable == "DoNotSchedule");
        Assert.Contains(spec.TopologySpreadConstraints, t => t.TopologyKey == "rack" && t.MaxSkew == 1);
    }

    [Fact]
    public void Build_LikeMatchingNoNodeValue_AsksForAValueNoNodeHas()
    {
        var spec = PodSpecs.Build(Run(constraints: [["disk", "LIKE", "nvme.*"]]), Options, new Dictionary<string, IReadOnlySet<string>>()).Spec;

        var expression = Assert.Single(spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions);
        Assert.Equal([PodSpecs.NoMatchingValue], expression.Values);
    }

    [Fact]
    public void Validate_ConstraintNotExpressibleAsNodeLabels_IsRefusedNamingIt()
    {
        var limits = new TaskLimits { Engine = new KubernetesDefinitionRules() };
        var definition = Run(constraints: [["rack", "EQUAL", "r1"], ["has space", "EQUAL", "x"], ["rack", "UNEQUAL", "not a value!"], ["rack", "MAX_PER", "0"]]).Definition;

        var errors = TaskDefinitionValidator.Validate(definition, limits);

        Assert.Equal(3, errors.Count);
        Assert.StartsWith("constraints[1][0]: 'has space'", errors[0], StringComparison.Ordinal);
        Assert.StartsWith("constraints[2][2]:", errors[1], StringComparison.Ordinal);
        Assert.StartsWith("constraints[3][2]: MAX_PER 0", errors[2], StringComparison.Ordinal);
        Assert.Empty(TaskDefinitionValidator.Validate(definition, TaskLimits.Default));
        Assert.Empty(TaskDefinitionValidator.Validate(Run(constraints: [["topology.kubernetes.io/zone", "EQUAL", "eu-1"], ["hostname", "UNIQUE"]]).Definition, limits));
    }
}
