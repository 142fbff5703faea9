using System.Globalization;
using System.Text.Json.Nodes;
using Longshore.Core.Tasks;

namespace Longshore.Backends.Mesos;

/// <summary>JSON bodies of the v1 scheduler calls (<c>mesos.v1.scheduler.Call</c>) the backend sends.</summary>
public static class MesosCalls
{
    public const string RunLabel = "longshore.run";
    public const string FamilyLabel = "longshore.family";
    public const string AttemptLabel = "longshore.attempt";

    public static JsonObject Subscribe(MesosBackendOptions options, string? frameworkId)
    {
        var info = new JsonObject
        {
            ["user"] = options.User,
            ["name"] = options.FrameworkName,
            ["roles"] = RoleList(options.Roles),
            ["checkpoint"] = true,
            ["failover_timeout"] = options.FailoverTimeout.TotalSeconds,
            // Not PARTITION_AWARE on purpose: a lost agent's tasks then end TASK_LOST (and are retried) instead of
            // waiting in TASK_UNREACHABLE for an agent that may never come back.
            ["capabilities"] = new JsonArray(Capability("MULTI_ROLE"), Capability("TASK_KILLING_STATE")),
        };
        if (options.Principal is not null)
            info["principal"] = options.Principal;
        var call = new JsonObject { ["type"] = "SUBSCRIBE", ["subscribe"] = new JsonObject { ["framework_info"] = info } };
        if (frameworkId is not null)
        {
            info["id"] = Id(frameworkId);
            call["framework_id"] = Id(frameworkId);
        }

        return call;
    }

    public static JsonObject Accept(string frameworkId, IEnumerable<string> offerIds, IEnumerable<JsonObject> tasks, double refuseSeconds) =>
        Call(frameworkId, "ACCEPT", "accept", new JsonObject
        {
            ["offer_ids"] = Ids(offerIds),
            ["operations"] = new JsonArray(new JsonObject
            {
                ["type"] = "LAUNCH",
                ["launch"] = new JsonObject { ["task_infos"] = new JsonArray([.. tasks]) },
            }),
            ["filters"] = new JsonObject { ["refuse_seconds"] = refuseSeconds },
        });

    public static JsonObject Decline(string frameworkId, IEnumerable<string> offerIds, double refuseSeconds) =>
        Call(frameworkId, "DECLINE", "decline", new JsonObject
        {
            ["offer_ids"] = Ids(offerIds),
            ["filters"] = new JsonObject { ["refuse_seconds"] = refuseSeconds },
        });

    public static JsonObject Acknowledge(string frameworkId, string agentId, string taskId, string uuid) =>
        Call(frameworkId, "ACKNOWLEDGE", "acknowledge", new JsonObject
        {
            ["agent_id"] = Id(agentId),
            ["task_id"] = Id(taskId),
            ["uuid"] = uuid,
        });

    public static JsonObject Kill(string frameworkId, string taskId, string? agentId, TimeSpan grace)
    {
        var kill = new JsonObject
        {
            ["task_id"] = Id(taskId),
            ["kill_policy"] = new JsonObject { ["grace_period"] = new JsonObject { ["nanoseconds"] = (long)(grace.TotalMilliseconds * 1_000_000) } },
        };
        if (agentId is not null)
            kill["agent_id"] = Id(agentId);
        return Call(frameworkId, "KILL", "kill", kill);
    }

    /// <summary>Explicit reconciliation of the given tasks; none at all asks the master for every task it knows (implicit).</summary>
    public static JsonObject Reconcile(string frameworkId, IEnumerable<(string TaskId, string? AgentId)> tasks)
    {
        var list = new JsonArray();
        foreach (var (taskId, agentId) in tasks)
        {
            var task = new JsonObject { ["task_id"] = Id(taskId) };
            if (agentId is not null)
                task["agent_id"] = Id(agentId);
            list.Add(task);
        }

        return Call(frameworkId, "RECONCILE", "reconcile", new JsonObject { ["tasks"] = list });
    }

    public static JsonObject Suppress(string frameworkId, IReadOnlyList<string> roles) =>
        Call(frameworkId, "SUPPRESS", "suppress", new JsonObject { ["roles"] = RoleList(roles) });

    public static JsonObject Revive(string frameworkId, IReadOnlyList<string> roles) =>
        Call(frameworkId, "REVIVE", "revive", new JsonObject { ["roles"] = RoleList(roles) });

    private static JsonArray RoleList(IReadOnlyList<string> roles) => new([.. roles.Select(role => (JsonNode)JsonValue.Create(role))]);

    /// <summary>
    /// The TaskInfo of a run: task id = run id, a DOCKER container (or a Mesos-containerizer command task when the
    /// definition has no image), <c>sh -c cmd</c>, env with the run's variables, scalar resources, labels naming the run.
    /// Host <paramref name="ports"/> picked from the offer are taken as a <c>ports</c> ranges resource, given to the task
    /// as <c>PORT0</c>… and, on the BRIDGE network, mapped to the same port in the container. The master fills each
    /// resource's <c>allocation_info</c> in from the accepted offers, as the recorded launches show; with several roles
    /// every resource also names its offers' role (<paramref name="role"/>) so the task is plainly allocated to one.
    /// With <paramref name="offered"/>, cpus and mem are taken from the offers' resources, reservations first, each
    /// named as offered; without, they are asked for as unreserved scalars.
    /// </summary>
    public static JsonObject TaskInfo(TaskRun run, string agentId, IReadOnlyList<int> ports, string? role = null, OfferedResources? offered = null)
    {
        var definition = run.Definition;
        var env = new Dictionary<string, string>(definition.Env ?? [], StringComparer.Ordinal)
        {
            ["LONGSHORE_MESOS_ID"] = run.MesosId,
            ["LONGSHORE_ATTEMPT"] = run.Attempt.ToString(CultureInfo.InvariantCulture),
        };
        TaskPorts.AddVariables(env, ports);
        var variables = new JsonArray();
        foreach (var (name, value) in env.OrderBy(pair => pair.Key, StringComparer.Ordinal))
            variables.Add(new JsonObject { ["name"] = name, ["value"] = value });
        var command = new JsonObject { ["shell"] = definition.Cmd is not null, ["environment"] = new JsonObject { ["variables"] = variables } };
        if (definition.Cmd is not null)
            command["value"] = definition.Cmd;

        var task = new JsonObject
        {
            ["name"] = run.MesosId,
            ["task_id"] = Id(run.MesosId),
            ["agent_id"] = Id(agentId),
            ["resources"] = Resources(definition, ports, role, offered),
            ["command"] = command,
            ["labels"] = new JsonObject
            {
                ["labels"] = new JsonArray(
                    Label(RunLabel, run.MesosId),
                    Label(FamilyLabel, run.FamilyId),
                    Label(AttemptLabel, run.Attempt.ToString(CultureInfo.InvariantCulture))),
            },
        };
        var container = definition.Container;
        if (container?.Docker?.Image is { } image && container.Type == "DOCKER")
        {
            var volumes = new JsonArray();
            foreach (var volume in container.Volumes ?? [])
            {
                volumes.Add(new JsonObject
                {
                    ["host_path"] = volume.HostPath,
                    ["container_path"] = volume.ContainerPath,
                    ["mode"] = volume.Mode == "RO" ? "RO" : "RW",
                });
            }

            var bridge = container.Docker.Network != "HOST";
            var docker = new JsonObject
            {
                ["image"] = image,
                ["network"] = bridge ? "BRIDGE" : "HOST",
                ["force_pull_image"] = container.Docker.ForcePullImage,
            };
            if (bridge && ports.Count > 0)
            {
                docker["port_mappings"] = new JsonArray([.. ports.Select(port => (JsonNode)new JsonObject
                {
                    ["host_port"] = port,
                    ["container_port"] = port,
                    ["protocol"] = "tcp",
                })]);
            }

            task["container"] = new JsonObject
            {
                ["type"] = "DOCKER",
                ["docker"] = docker,
                ["volumes"] = volumes,
            };
        }

        return task;
    }

    private static JsonObject Call(string frameworkId, string type, string field, JsonObject body) =>
        new() { ["framework_id"] = Id(frameworkId), ["type"] = type, [field] = body };

    private static JsonObject Id(string value) => new() { ["value"] = value };

    private static JsonArray Ids(IEnumerable<string> values) => new([.. values.Select(v => (JsonNode)Id(v))]);

    private static JsonObject Capability(string type) => new() { ["type"] = type };

    private static JsonArray Resources(TaskDefinition definition, IReadOnlyList<int> ports, string? role, OfferedResources? offered)
    {
        var resources = offered is null
            ? new JsonArray(Scalar("cpus", definition.Cpus), Scalar("mem", definition.Mem))
            : new JsonArray([.. offered.Take("cpus", definition.Cpus), .. offered.Take("mem", definition.Mem)]);
        if (ports.Count > 0)
        {
            var ranges = new JsonArray([.. ports.Order().Select(port => (JsonNode)new JsonObject { ["begin"] = port, ["end"] = port })]);
            resources.Add(new JsonObject { ["name"] = "ports", ["type"] = "RANGES", ["ranges"] = new JsonObject { ["range"] = ranges } });
        }

        if (role is not null)
        {
            foreach (var resource in resources)
                resource!["allocation_info"] = new JsonObject { ["role"] = role };
        }

        return resources;
    }

    /// <summary>An unreserved scalar resource.</summary>
    public static JsonObject Scalar(string name, double value) =>
        new() { ["name"] = name, ["type"] = "SCALAR", ["scalar"] = new JsonObject { ["value"] = value } };

    private static JsonObject Label(string key, string value) => new() { ["key"] = key, ["value"] = value };
}
