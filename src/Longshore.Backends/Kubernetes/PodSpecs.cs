using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using k8s.Models;
using Longshore.Core.Placement;
using Longshore.Core.Tasks;

namespace Longshore.Backends.Kubernetes;

/// <summary>
/// The pod a run becomes, built from the run alone (plus, for LIKE / UNLIKE, the node label values seen at launch):
/// the same run always gives the same pod, so a second launch finds the first pod by its name instead of starting
/// another. Pure, tested without a cluster.
/// </summary>
public static partial class PodSpecs
{
    public const string ContainerName = "task";
    public const string ManagedByLabel = "app.kubernetes.io/managed-by";
    public const string ManagedBy = "longshore";
    public const string InstanceLabel = "longshore.io/instance";
    public const string RunLabel = "longshore.io/run";
    public const string FamilyLabel = "longshore.io/family";
    public const string AttemptLabel = "longshore.io/attempt";
    public const string MesosIdAnnotation = "longshore.io/mesos-id";
    public const string FamilyAnnotation = "longshore.io/family";
    public const string HostnameLabel = "kubernetes.io/hostname";

    /// <summary>Label value of node affinity that no node carries: a LIKE that matches no node value waits, as on Mesos.</summary>
    public const string NoMatchingValue = "longshore-no-matching-value";

    /// <summary>The selector of every pod of one store.</summary>
    public static string Selector(string instanceId) => $"{ManagedByLabel}={ManagedBy},{InstanceLabel}={LabelValue(instanceId)}";

    /// <summary>
    /// <c>ls-&lt;family, made DNS-safe, at most 26&gt;-&lt;32 hex&gt;</c>: the run's uuid when its id ends with one, else a hash of
    /// the whole id. At most 62 characters, so it is also a valid label value.
    /// </summary>
    public static string PodName(string mesosId)
    {
        var dot = mesosId.LastIndexOf('.');
        var family = dot > 0 ? mesosId[..dot] : mesosId;
        var suffix = dot > 0 && Guid.TryParseExact(mesosId[(dot + 1)..], "D", out var uuid) ? uuid.ToString("N") : Hash(mesosId, 32);
        var prefix = NotDnsLabel().Replace(family.ToLowerInvariant(), "-").Trim('-');
        if (prefix.Length > 26)
            prefix = prefix[..26].TrimEnd('-');
        return $"ls-{(prefix.Length == 0 ? "run" : prefix)}-{suffix}";
    }

    /// <summary>A label value (at most 63 of letters, digits, '-', '_', '.', alphanumeric at both ends) standing for <paramref name="value"/>.</summary>
    public static string LabelValue(string value)
    {
        var clean = NotLabelValue().Replace(value, "_");
        if (clean.Length > 63)
            clean = clean[..50] + "-" + Hash(value, 12);
        clean = clean.Trim('-', '_', '.');
        return clean.Length == 0 ? "x" + Hash(value, 12) : clean;
    }

    /// <summary>The node label a constraint attribute names: <c>hostname</c> is the node's <c>kubernetes.io/hostname</c>.</summary>
    public static string LabelKey(string attribute) => attribute == "hostname" ? HostnameLabel : attribute;

    /// <summary>True when the run has constraints that need the nodes' label values at launch (LIKE, UNLIKE).</summary>
    public static bool NeedsNodeLabels(TaskDefinition definition) =>
        Constraint.Parse(definition.Constraints).Any(c => c.Operator is ConstraintOperator.Like or ConstraintOperator.Unlike);

    /// <summary>The pod for <paramref name="run"/>.</summary>
    /// <param name="nodeLabels">Values each node label key has on the cluster's nodes now; needed for LIKE / UNLIKE only.</param>
    public static V1Pod Build(TaskRun run, KubernetesBackendOptions options, IReadOnlyDictionary<string, IReadOnlySet<string>>? nodeLabels = null)
    {
        var definition = run.Definition;
        var docker = definition.Container!.Docker!;
        var name = PodName(run.MesosId);
        var env = new Dictionary<string, string>(definition.Env ?? [], StringComparer.Ordinal)
        {
            ["MESOS_TASK_ID"] = run.MesosId,
            ["LONGSHORE_MESOS_ID"] = run.MesosId,
            ["LONGSHORE_ATTEMPT"] = run.Attempt.ToString(CultureInfo.InvariantCulture),
        };
        var ports = HostPorts(run.MesosId, definition.Ports, options);
        TaskPorts.AddVariables(env, ports);
        var resources = new Dictionary<string, ResourceQuantity>
        {
            ["cpu"] = new(Math.Max(1, (long)Math.Round(definition.Cpus * 1000)).ToString(CultureInfo.InvariantCulture) + "m"),
            ["memory"] = new(((long)(definition.Mem * 1024 * 1024)).ToString(CultureInfo.InvariantCulture)),
        };
        var volumes = definition.Container.Volumes ?? [];
        var familyValue = LabelValue(run.FamilyId);
        var container = new V1Container
        {
            Name = ContainerName,
            Image = docker.Image,
            ImagePullPolicy = docker.ForcePullImage ? "Always" : "IfNotPresent",
            // As on the local engine: the command runs as `sh -c cmd`; without one, the image's own command runs.
            Command = definition.Cmd is null ? null : ["/bin/sh", "-c", definition.Cmd],
            Env = env.Select(pair => new V1EnvVar { Name = pair.Key, Value = pair.Value }).ToList(),
            // Requests equal to limits: the pod is placed on what it may use, and gets the Guaranteed class.
            Resources = new V1ResourceRequirements { Requests = resources, Limits = new Dictionary<string, ResourceQuantity>(resources) },
            Ports = ports.Length == 0 ? null : ports.Select(port => new V1ContainerPort { ContainerPort = port, HostPort = port, Protocol = "TCP" }).ToList(),
            VolumeMounts = volumes.Count == 0 ? null : volumes.Select((v, i) => new V1VolumeMount
            {
                MountPath = v.ContainerPath!,
                Name = "volume" + i.ToString(CultureInfo.InvariantCulture),
                ReadOnlyProperty = v.Mode == "RO",
            }).ToList(),
            SecurityContext = new V1SecurityContext { AllowPrivilegeEscalation = false, Privileged = false },
        };
        var spec = new V1PodSpec
        {
            RestartPolicy = "Never",
            Containers = [container],
            HostNetwork = docker.Network == "HOST" ? true : null,
            Volumes = volumes.Count == 0 ? null : volumes.Select((v, i) => new V1Volume
            {
                Name = "volume" + i.ToString(CultureInfo.InvariantCulture),
                HostPath = new V1HostPathVolumeSource { Path = v.HostPath! },
            }).ToList(),
            ServiceAccountName = options.ServiceAccount,
            // Tasks get no API credentials unless a service account is chosen for them.
            AutomountServiceAccountToken = options.ServiceAccount is null ? false : null,
            EnableServiceLinks = false,
        };
        Place(spec, definition, familyValue, nodeLabels);
        return new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = name,
                NamespaceProperty = options.Namespace,
                Labels = new Dictionary<string, string>
                {
                    [ManagedByLabel] = ManagedBy,
                    [InstanceLabel] = LabelValue(options.InstanceId),
                    [RunLabel] = name,
                    [FamilyLabel] = familyValue,
                    [AttemptLabel] = run.Attempt.ToString(CultureInfo.InvariantCulture),
                },
                Annotations = new Dictionary<string, string> { [MesosIdAnnotation] = run.MesosId, [FamilyAnnotation] = run.FamilyId },
            },
            Spec = spec,
        };
    }

    /// <summary>
    /// Marathon constraints as Kubernetes placement: EQUAL / CLUSTER with a value → nodeSelector; UNEQUAL → node affinity
    /// NotIn; LIKE / UNLIKE → node affinity In / NotIn the node values the expression matches now; UNIQUE → pod anti-affinity
    /// over the attribute; CLUSTER without a value → pod affinity (the family's first pod goes anywhere, the rest follow it);
    /// MAX_PER n / GROUP_BY → topology spread with skew n / 1.
    /// </summary>
    private static void Place(V1PodSpec spec, TaskDefinition definition, string familyValue, IReadOnlyDictionary<string, IReadOnlySet<string>>? nodeLabels)
    {
        var selector = new Dictionary<string, string>(StringComparer.Ordinal);
        var expressions = new List<V1NodeSelectorRequirement>();
        var affinity = new List<V1PodAffinityTerm>();
        var antiAffinity = new List<V1PodAffinityTerm>();
        var spread = new List<V1TopologySpreadConstraint>();
        var family = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { [FamilyLabel] = familyValue } };
        foreach (var constraint in Constraint.Parse(definition.Constraints))
        {
            var key = LabelKey(constraint.Attribute);
            switch (constraint.Operator)
            {
                case ConstraintOperator.Equal:
                case ConstraintOperator.Cluster when constraint.Value is not null:
                    if (!selector.TryAdd(key, constraint.Value!) && selector[key] != constraint.Value)
                        expressions.Add(Requirement(key, "In", [constraint.Value!]));
                    break;
                case ConstraintOperator.Cluster:
                    affinity.Add(new V1PodAffinityTerm { TopologyKey = key, LabelSelector = family });
                    break;
                case ConstraintOperator.Unequal:
                    expressions.Add(Requirement(key, "NotIn", [constraint.Value!]));
                    break;
                case ConstraintOperator.Like:
                case ConstraintOperator.Unlike:
                    var pattern = new Regex("^(?:" + constraint.Value + ")$", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(50));
                    var matching = (nodeLabels?.GetValueOrDefault(key) ?? new HashSet<string>()).Where(v => pattern.IsMatch(v)).Order(StringComparer.Ordinal).ToList();
                    if (constraint.Operator == ConstraintOperator.Like)
                        expressions.Add(Requirement(key, "In", matching.Count == 0 ? [NoMatchingValue] : matching));
                    else if (matching.Count > 0)
                        expressions.Add(Requirement(key, "NotIn", matching));
                    break;
                case ConstraintOperator.Unique:
                    antiAffinity.Add(new V1PodAffinityTerm { TopologyKey = key, LabelSelector = family });
                    break;
                case ConstraintOperator.MaxPer:
                case ConstraintOperator.GroupBy:
                    var skew = constraint.Operator == ConstraintOperator.MaxPer ? int.Parse(constraint.Value!, CultureInfo.InvariantCulture) : 1;
                    spread.Add(new V1TopologySpreadConstraint { MaxSkew = skew, TopologyKey = key, WhenUnsatisfiable = "DoNotSchedule", LabelSelector = family });
                    break;
            }
        }

        spec.NodeSelector = selector.Count == 0 ? null : selector;
        spec.TopologySpreadConstraints = spread.Count == 0 ? null : spread;
        if (expressions.Count + affinity.Count + antiAffinity.Count == 0)
            return;
        spec.Affinity = new V1Affinity
        {
            NodeAffinity = expressions.Count == 0 ? null : new V1NodeAffinity
            {
                RequiredDuringSchedulingIgnoredDuringExecution = new V1NodeSelector { NodeSelectorTerms = [new V1NodeSelectorTerm { MatchExpressions = expressions }] },
            },
            PodAffinity = affinity.Count == 0 ? null : new V1PodAffinity { RequiredDuringSchedulingIgnoredDuringExecution = affinity },
            PodAntiAffinity = antiAffinity.Count == 0 ? null : new V1PodAntiAffinity { RequiredDuringSchedulingIgnoredDuringExecution = antiAffinity },
        };
    }

    /// <summary>
    /// Host ports for a run, drawn from the range by a generator seeded with the run id: a second launch of the same run asks
    /// for the same ports. The kube-scheduler places the pod only on a node where they are free.
    /// </summary>
    public static int[] HostPorts(string mesosId, int count, KubernetesBackendOptions options)
    {
        if (count == 0)
            return [];
        var random = new Random(BitConverter.ToInt32(SHA256.HashData(Encoding.UTF8.GetBytes(mesosId)), 0));
        var ports = new List<int>(count);
        while (ports.Count < count)
        {
            var port = random.Next(options.PortRangeStart, options.PortRangeEnd + 1);
            if (!ports.Contains(port))
                ports.Add(port);
        }

        return ports.ToArray();
    }

    private static V1NodeSelectorRequirement Requirement(string key, string op, IList<string> values) =>
        new() { Key = key, OperatorProperty = op, Values = values };

    private static string Hash(string value, int length) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)))[..length];

    [GeneratedRegex("[^a-z0-9]+")]
    private static partial Regex NotDnsLabel();

    [GeneratedRegex("[^A-Za-z0-9_.-]")]
    private static partial Regex NotLabelValue();
}

/// <summary>What the Kubernetes engine can express of a definition's constraints (checked at submit time).</summary>
public sealed partial class KubernetesDefinitionRules : IDefinitionRules
{
    public IEnumerable<string> Check(TaskDefinition definition)
    {
        var constraints = definition.Constraints ?? [];
        for (var i = 0; i < constraints.Count; i++)
        {
            var c = constraints[i];
            var key = PodSpecs.LabelKey(c[0]);
            if (!IsLabelKey(key))
                yield return $"constraints[{i}][0]: '{c[0]}' cannot be a Kubernetes node label key (a name of at most 63 letters, digits, '-', '_' or '.', optionally after a DNS prefix and '/')";
            if (c[1] is "EQUAL" or "CLUSTER" or "UNEQUAL" && c.Count == 3 && !IsLabelValue(c[2]))
                yield return $"constraints[{i}][2]: '{c[2]}' cannot be a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends), so {c[1]} could never match";
            if (c[1] == "MAX_PER" && c.Count == 3 && c[2] == "0")
                yield return $"constraints[{i}][2]: MAX_PER 0 cannot be expressed as a topology spread (its skew must be at least 1)";
        }
    }

    private static bool IsLabelKey(string key)
    {
        var slash = key.IndexOf('/', StringComparison.Ordinal);
        var name = slash < 0 ? key : key[(slash + 1)..];
        if (slash >= 0 && (slash == 0 || slash > 253 || !DnsSubdomain().IsMatch(key[..slash])))
            return false;
        return name.Length is > 0 and <= 63 && LabelName().IsMatch(name);
    }

    private static bool IsLabelValue(string value) => value.Length <= 63 && (value.Length == 0 || LabelName().IsMatch(value));

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")]
    private static partial Regex LabelName();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex DnsSubdomain();
}
