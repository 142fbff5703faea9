using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Tasks;

public sealed class TaskDefinitionValidatorTests
{
    private static readonly TaskDefinition Valid = new() { Id = "a", Container = new ContainerSpec { Docker = new DockerSpec { Image = "busybox" } } };

    private static IReadOnlyList<string> Errors(TaskDefinition definition, params string[] allowedHostPaths) =>
        TaskDefinitionValidator.Validate(definition, new TaskLimits { AllowedHostPaths = allowedHostPaths });

    [Fact]
    public void Minimal_IsValid_WithHippoDefaults()
    {
        Assert.Empty(Errors(Valid));
        Assert.Equal(128, Valid.Mem);
        Assert.Equal(1, Valid.Cpus);
        Assert.Equal(0, Valid.TaskRetries);
        Assert.Equal(2, Valid.SystemRetries);
        Assert.Equal(10, Valid.MaxConcurrent);
        Assert.Equal("BRIDGE", Valid.Container!.Docker!.Network);
    }

    [Theory]
    [InlineData(4, true)]
    [InlineData(3.99, false)]
    [InlineData(64000, true)]
    [InlineData(64001, false)]
    [InlineData(double.NaN, false)]
    public void Mem_Range(double mem, bool ok) => Assert.Equal(ok, Errors(Valid with { Mem = mem }).Count == 0);

    [Theory]
    [InlineData(0.01, true)]
    [InlineData(12, true)]
    [InlineData(0.009, false)]
    [InlineData(12.01, false)]
    public void Cpus_Range(double cpus, bool ok) => Assert.Equal(ok, Errors(Valid with { Cpus = cpus }).Count == 0);

    [Theory]
    [InlineData(0, true)]
    [InlineData(100, true)]
    [InlineData(-1, false)]
    [InlineData(101, false)]
    public void Retries_Range(int retries, bool ok)
    {
        Assert.Equal(ok, Errors(Valid with { TaskRetries = retries }).Count == 0);
        Assert.Equal(ok, Errors(Valid with { SystemRetries = retries }).Count == 0);
    }

    [Theory]
    [InlineData("a b")]
    [InlineData("-lead")]
    [InlineData("slash/no")]
    [InlineData("")]
    public void Id_BadCharacters_Refused(string id) =>
        Assert.StartsWith("id:", Assert.Single(Errors(Valid with { Id = id })), StringComparison.Ordinal);

    [Fact]
    public void Network_IsCaseSensitive_AndTheMessageListsTheChoices()
    {
        var error = Assert.Single(Errors(Valid with { Container = Valid.Container! with { Docker = new DockerSpec { Image = "busybox", Network = "host" } } }));
        Assert.Equal("container.docker.network: must be one of BRIDGE, HOST, got 'host'", error);
    }

    [Theory]
    [InlineData("/data/in", new[] { "/data" }, true)]
    [InlineData("/data", new[] { "/data/" }, true)]
    [InlineData("/data/../etc", new[] { "/data" }, false)]
    [InlineData("/database", new[] { "/data" }, false)]
    [InlineData("/tmp/x", new string[0], false)]
    public void HostPath_MustBeUnderAnAllowedFolder(string hostPath, string[] allowed, bool ok)
    {
        var volume = new VolumeSpec { HostPath = hostPath, ContainerPath = "/mnt", Mode = "RO" };
        var errors = Errors(Valid with { Container = Valid.Container! with { Volumes = [volume] } }, allowed);
        Assert.Equal(ok, errors.Count == 0);
        if (!ok)
            Assert.StartsWith("container.volumes[0].hostPath:", errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public void VolumeMode_Lowercase_Refused()
    {
        var volume = new VolumeSpec { HostPath = "/data", ContainerPath = "/mnt", Mode = "rw" };
        Assert.Contains("container.volumes[0].mode: must be one of RO, RW, got 'rw'", Errors(Valid with { Container = Valid.Container! with { Volumes = [volume] } }, "/data"));
    }

    [Fact]
    public void Env_And_Constraints_AreChecked()
    {
        Assert.StartsWith("env.1BAD:", Assert.Single(Errors(Valid with { Env = new() { ["1BAD"] = "x" } })), StringComparison.Ordinal);
        Assert.StartsWith("constraints[0][1]:", Assert.Single(Errors(Valid with { Constraints = [["host", "NEAR", "x"]] })), StringComparison.Ordinal);
        Assert.StartsWith("constraints[0][2]:", Assert.Single(Errors(Valid with { Constraints = [["host", "LIKE", "("]] })), StringComparison.Ordinal);
        Assert.Empty(Errors(Valid with { Constraints = [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "3"]] }));
    }

    [Fact]
    public void EveryFailingField_IsReportedAtOnce()
    {
        var errors = Errors(new TaskDefinition { Mem = 1, Cpus = 99, TaskRetries = -3, MaxConcurrent = 0 });

        Assert.Equal(6, errors.Count);
        foreach (var field in (string[])["id:", "container:", "mem:", "cpus:", "task_retries:", "max_concurrent:"])
            Assert.Contains(errors, e => e.StartsWith(field, StringComparison.Ordinal));
    }
}
