using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Tasks;

public sealed class TaskDefinitionValidatorTests
{
    private static readonly TaskDefinition Valid = new() { Id = "a", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } };

    private static IReadOnlyList<string> Errors(TaskDefinition definition, params string[] allowedHostPaths) =>
        TaskDefinitionValidator.Validate(definition, new TaskLimits { AllowedHostPaths = allowedHostPaths });

    private static string SingleError(TaskDefinition definition, params string[] allowedHostPaths) =>
        Assert.Single(Errors(definition, allowedHostPaths));

    private static TaskDefinition WithDocker(DockerSpec docker) => Valid with { Container = Valid.Container! with { Docker = docker } };

    private static TaskDefinition WithVolumes(params VolumeSpec[] volumes) => Valid with { Container = Valid.Container! with { Volumes = [.. volumes] } };

    private static TaskDefinition WithNumber(string field, double value) => field switch
    {
        "mem" => Valid with { Mem = value },
        "cpus" => Valid with { Cpus = value },
        "task_retries" => Valid with { TaskRetries = checked((int)value) },
        "system_retries" => Valid with { SystemRetries = checked((int)value) },
        "max_concurrent" => Valid with { MaxConcurrent = checked((int)value) },
        "ports" => Valid with { Ports = checked((int)value) },
        _ => throw new ArgumentOutOfRangeException(nameof(field), field, "no such numeric field"),
    };

    [Fact]
    public void Validate_MinimalJsonBody_HasNoErrorsAndHippoDefaults()
    {
        var (definition, parseErrors) = TaskDefinitionJson.Parse<TaskDefinition>("""{"id":"a","container":{"docker":{"image":"busybox"}}}"""u8);

        Assert.Empty(parseErrors);
        Assert.NotNull(definition);
        Assert.Empty(TaskDefinitionValidator.Validate(definition, TaskLimits.Default));
        Assert.Equal(128, definition.Mem);
        Assert.Equal(1, definition.Cpus);
        Assert.Equal(0, definition.TaskRetries);
        Assert.Equal(2, definition.SystemRetries);
        Assert.Equal(10, definition.MaxConcurrent);
        Assert.Equal(0, definition.Ports);
        Assert.Equal("DOCKER", definition.Container!.Type);
        Assert.Equal("BRIDGE", definition.Container.Docker!.Network);
        Assert.False(definition.Container.Docker.ForcePullImage);
        Assert.Null(definition.Cmd);
    }

    [Theory]
    [InlineData("mem", 4)]
    [InlineData("mem", 64000)]
    [InlineData("cpus", 0.01)]
    [InlineData("cpus", 12)]
    [InlineData("task_retries", 0)]
    [InlineData("task_retries", 100)]
    [InlineData("system_retries", 0)]
    [InlineData("system_retries", 100)]
    [InlineData("max_concurrent", 1)]
    [InlineData("max_concurrent", 10000)]
    [InlineData("ports", 0)]
    [InlineData("ports", 16)]
    public void Validate_NumberOnTheEdgeOfItsRange_IsAccepted(string field, double value) =>
        Assert.Empty(Errors(WithNumber(field, value)));

    [Theory]
    [InlineData("mem", 3.99)]
    [InlineData("mem", 64001)]
    [InlineData("mem", 0)]
    [InlineData("mem", double.NaN)]
    [InlineData("mem", double.PositiveInfinity)]
    [InlineData("cpus", 0.009)]
    [InlineData("cpus", 12.01)]
    [InlineData("cpus", double.NaN)]
    [InlineData("task_retries", -1)]
    [InlineData("task_retries", 101)]
    [InlineData("system_retries", -1)]
    [InlineData("system_retries", 101)]
    [InlineData("max_concurrent", 0)]
    [InlineData("max_concurrent", 10001)]
    [InlineData("ports", -1)]
    [InlineData("ports", 17)]
    public void Validate_NumberJustOutsideItsRange_NamesTheField(string field, double value) =>
        Assert.StartsWith(field + ": must be between ", SingleError(WithNumber(field, value)), StringComparison.Ordinal);

    [Theory]
    [InlineData("mem", 3.99, "mem: must be between 4 and 64000 MB, got 3.99")]
    [InlineData("cpus", 12.01, "cpus: must be between 0.01 and 12 cores, got 12.01")]
    [InlineData("max_concurrent", 0, "max_concurrent: must be between 1 and 10000, got 0")]
    public void Validate_NumberOutOfRange_MessageGivesRangeUnitAndValue(string field, double value, string expected) =>
        Assert.Equal(expected, SingleError(WithNumber(field, value)));

    [Theory]
    [InlineData("a")]
    [InlineData("0")]
    [InlineData("Web_01.batch-7")]
    public void Validate_GoodId_IsAccepted(string id) => Assert.Empty(Errors(Valid with { Id = id }));

    [Fact]
    public void Validate_IdOfMaxLength_IsAccepted() => Assert.Empty(Errors(Valid with { Id = new string('a', TaskDefinitionValidator.MaxIdLength) }));

    [Theory]
    [InlineData("a b")]
    [InlineData("-lead")]
    [InlineData("_lead")]
    [InlineData(".lead")]
    [InlineData("slash/no")]
    [InlineData("colon:no")]
    [InlineData("caf\u00e9")]
    [InlineData("tab\tno")]
    public void Validate_IdWithBadCharacters_NamesId(string id) =>
        Assert.StartsWith("id: must be 1 to 100 characters", SingleError(Valid with { Id = id }), StringComparison.Ordinal);

    [Fact]
    public void Validate_IdOverMaxLength_NamesId() =>
        Assert.StartsWith("id:", SingleError(Valid with { Id = new string('a', TaskDefinitionValidator.MaxIdLength + 1) }), StringComparison.Ordinal);

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void Validate_MissingId_SaysIdIsRequired(string? id) => Assert.Equal("id: is required", SingleError(Valid with { Id = id }));

    [Fact]
    public void Validate_IdWithTrailingNewline_NamesId() =>
        Assert.StartsWith("id:", SingleError(Valid with { Id = "a\n" }), StringComparison.Ordinal);

    [Fact]
    public void Validate_MissingContainer_NamesContainer() =>
        Assert.StartsWith("container: is required", SingleError(Valid with { Container = null }), StringComparison.Ordinal);

    [Fact]
    public void Validate_MissingDocker_NamesContainerDocker() =>
        Assert.Equal("container.docker: is required", SingleError(Valid with { Container = new ContainerSpec() }));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public void Validate_MissingImage_NamesTheImage(string? image) =>
        Assert.Equal("container.docker.image: is required", SingleError(WithDocker(new DockerSpec { Image = image })));

    [Theory]
    [InlineData("busy box")]
    [InlineData("busybox\n")]
    public void Validate_ImageWithWhitespace_NamesTheImage(string image) =>
        Assert.StartsWith("container.docker.image: must be an image reference", SingleError(WithDocker(new DockerSpec { Image = image })), StringComparison.Ordinal);

    [Fact]
    public void Validate_ContainerTypeLowercase_NamesTheType() =>
        Assert.Equal("container.type: must be one of DOCKER, got 'docker'", SingleError(Valid with { Container = Valid.Container! with { Type = "docker" } }));

    [Fact]
    public void Validate_NetworkLowercaseHost_ListsTheChoices() =>
        Assert.Equal(
            "container.docker.network: must be one of BRIDGE, HOST, got 'host'",
            SingleError(WithDocker(new DockerSpec { Image = "busybox", Network = "host" })));

    [Fact]
    public void Validate_NetworkHost_IsAccepted() => Assert.Empty(Errors(WithDocker(new DockerSpec { Image = "busybox", Network = "HOST" })));

    [Theory]
    [InlineData("rw")]
    [InlineData("ro")]
    [InlineData("RWX")]
    public void Validate_VolumeModeNotUppercaseRoOrRw_NamesTheMode(string mode) =>
        Assert.Equal(
            $"container.volumes[0].mode: must be one of RO, RW, got '{mode}'",
            SingleError(WithVolumes(new VolumeSpec { HostPath = "/data", ContainerPath = "/mnt", Mode = mode }), "/data"));

    [Theory]
    [InlineData("/data/in", "/data")]
    [InlineData("/data", "/data")]
    [InlineData("/data", "/data/")]
    [InlineData("/data/", "/data")]
    [InlineData("/data/a/../b", "/data")]
    [InlineData("/srv/x", "/data,/srv")]
    [InlineData("/anything/at/all", "/")]
    public void Validate_HostPathUnderAnAllowedRoot_IsAccepted(string hostPath, string allowed) =>
        Assert.Empty(Errors(WithVolumes(new VolumeSpec { HostPath = hostPath, ContainerPath = "/mnt" }), allowed.Split(',')));

    [Theory]
    [InlineData("/data/../etc", "/data")]
    [InlineData("/data/./../etc/passwd", "/data")]
    [InlineData("/database", "/data")]
    [InlineData("/dat", "/data")]
    [InlineData("/", "/data")]
    [InlineData("/etc", "/data,/srv")]
    public void Validate_HostPathOutsideTheAllowedRoots_NamesTheHostPath(string hostPath, string allowed) =>
        Assert.Equal(
            $"container.volumes[0].hostPath: '{hostPath}' is outside the allowed host paths; allowed: {allowed.Replace(",", ", ", StringComparison.Ordinal)} and below",
            SingleError(WithVolumes(new VolumeSpec { HostPath = hostPath, ContainerPath = "/mnt" }), allowed.Split(',')));

    [Theory]
    [InlineData("/")]
    [InlineData("/tmp/x")]
    [InlineData("/data")]
    public void Validate_AnyHostPathWithEmptyAllowlist_IsRejected(string hostPath) =>
        Assert.EndsWith(
            "no host paths are allowed on this server (see --allow-host-path)",
            SingleError(WithVolumes(new VolumeSpec { HostPath = hostPath, ContainerPath = "/mnt" })),
            StringComparison.Ordinal);

    [Theory]
    [InlineData("data/in")]
    [InlineData("")]
    [InlineData("/data:/etc")]
    public void Validate_HostPathNotAbsolute_NamesTheHostPath(string hostPath) =>
        Assert.Equal(
            "container.volumes[0].hostPath: must be an absolute path",
            SingleError(WithVolumes(new VolumeSpec { HostPath = hostPath, ContainerPath = "/mnt" }), "/"));

    [Fact]
    public void Validate_ContainerPathNotAbsolute_NamesTheContainerPath() =>
        Assert.Equal(
            "container.volumes[0].containerPath: must be an absolute path",
            SingleError(WithVolumes(new VolumeSpec { HostPath = "/data", ContainerPath = "mnt" }), "/data"));

    [Fact]
    public void Validate_SecondVolumeBad_NamesItsIndex()
    {
        var good = new VolumeSpec { HostPath = "/data/a", ContainerPath = "/a" };
        var bad = new VolumeSpec { HostPath = "/etc", ContainerPath = "/b" };

        Assert.StartsWith("container.volumes[1].hostPath:", SingleError(WithVolumes(good, bad), "/data"), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NullVolume_SaysItMustBeAnObject() =>
        Assert.Equal("container.volumes[0]: must be an object", SingleError(WithVolumes([null!])));

    [Theory]
    [InlineData("A")]
    [InlineData("_private")]
    [InlineData("PATH_2")]
    public void Validate_GoodEnvName_IsAccepted(string name) => Assert.Empty(Errors(Valid with { Env = new() { [name] = "x" } }));

    [Theory]
    [InlineData("1BAD")]
    [InlineData("A-B")]
    [InlineData("A B")]
    [InlineData("")]
    public void Validate_BadEnvName_NamesTheVariable(string name) =>
        Assert.StartsWith($"env.{name}: variable names must match", SingleError(Valid with { Env = new() { [name] = "x" } }), StringComparison.Ordinal);

    [Fact]
    public void Validate_EnvNameWithTrailingNewline_NamesTheVariable() =>
        Assert.StartsWith("env.A\n:", SingleError(Valid with { Env = new() { ["A\n"] = "x" } }), StringComparison.Ordinal);

    [Fact]
    public void Validate_EnvValueNull_SaysItMustBeAString() =>
        Assert.Equal("env.A: must be a string", SingleError(Valid with { Env = new() { ["A"] = null! } }));

    [Fact]
    public void Validate_EnvValueWithNul_NamesTheVariable() =>
        Assert.StartsWith("env.A: must be at most", SingleError(Valid with { Env = new() { ["A"] = "x\0y" } }), StringComparison.Ordinal);

    [Fact]
    public void Validate_CmdWithNul_NamesCmd() =>
        Assert.Equal("cmd: must not contain a NUL character", SingleError(Valid with { Cmd = "echo\0hi" }));

    [Fact]
    public void Validate_KnownConstraints_AreAccepted() =>
        Assert.Empty(Errors(Valid with
        {
            Constraints =
            [
                ["hostname", "UNIQUE"],
                ["rack", "GROUP_BY", "3"],
                ["rack", "CLUSTER"],
                ["zone", "EQUAL", "a"],
                ["hostname", "LIKE", "^node-[0-9]+$"],
                ["hostname", "UNLIKE", "db.*"],
                ["hostname", "MAX_PER", "2"],
                ["zone", "UNEQUAL", "b"],
            ],
        }));

    [Fact]
    public void Validate_UnknownConstraintOperator_NamesTheOperatorSlot() =>
        Assert.StartsWith("constraints[0][1]: must be one of EQUAL, CLUSTER, LIKE", SingleError(Valid with { Constraints = [["host", "NEAR", "x"]] }), StringComparison.Ordinal);

    [Fact]
    public void Validate_LowercaseConstraintOperator_IsRejected() =>
        Assert.StartsWith("constraints[0][1]:", SingleError(Valid with { Constraints = [["host", "like", "x"]] }), StringComparison.Ordinal);

    [Theory]
    [InlineData("LIKE", "(")]
    [InlineData("UNLIKE", "[a-")]
    public void Validate_LikeWithBadRegex_NamesTheValueSlot(string op, string pattern) =>
        Assert.Equal("constraints[0][2]: must be a valid regular expression", SingleError(Valid with { Constraints = [["host", op, pattern]] }));

    [Theory]
    [InlineData("MAX_PER", "x")]
    [InlineData("MAX_PER", "-1")]
    [InlineData("GROUP_BY", "1.5")]
    public void Validate_CountingOperatorWithNonNumber_NamesTheValueSlot(string op, string value) =>
        Assert.Equal($"constraints[0][2]: must be a whole number for {op}", SingleError(Valid with { Constraints = [["rack", op, value]] }));

    [Fact]
    public void Validate_EqualWithoutValue_SaysItNeedsOne() =>
        Assert.Equal("constraints[0]: operator EQUAL needs a value", SingleError(Valid with { Constraints = [["zone", "EQUAL"]] }));

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Validate_ConstraintOfWrongLength_NamesTheConstraint(int length) =>
        Assert.StartsWith(
            "constraints[1]: must be [attribute, operator]",
            SingleError(Valid with { Constraints = [["hostname", "UNIQUE"], [.. Enumerable.Repeat("UNIQUE", length)]] }),
            StringComparison.Ordinal);

    [Fact]
    public void Validate_ManyBadFields_ReportsEveryOneAtOnce()
    {
        var errors = Errors(new TaskDefinition
        {
            Id = "bad id",
            Mem = 1,
            Cpus = 99,
            TaskRetries = -3,
            SystemRetries = 101,
            MaxConcurrent = 0,
            Env = new() { ["1BAD"] = "x" },
            Constraints = [["host", "NEAR", "x"]],
        });

        Assert.Equal(
            ["id", "container", "mem", "cpus", "task_retries", "system_retries", "max_concurrent", "env.1BAD", "constraints[0][1]"],
            errors.Select(error => error[..error.IndexOf(':', StringComparison.Ordinal)]));
    }

    [Fact]
    public void Validate_ContainerProblemsAndFieldProblems_AreReportedTogether()
    {
        var definition = new TaskDefinition
        {
            Id = "a",
            Mem = 70000,
            Container = new ContainerSpec
            {
                Docker = new DockerSpec { Image = "", Network = "host" },
                Volumes = [new VolumeSpec { HostPath = "/etc", ContainerPath = "/c", Mode = "rw" }],
            },
        };

        var errors = Errors(definition, "/data");

        Assert.Equal(5, errors.Count);
        foreach (var field in (string[])["container.docker.image:", "container.docker.network:", "container.volumes[0].mode:", "container.volumes[0].hostPath:", "mem:"])
            Assert.Single(errors, error => error.StartsWith(field, StringComparison.Ordinal));
    }
}
