using System.Text;
using System.Text.Json.Nodes;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Tasks;

public sealed class TaskDefinitionJsonTests
{
    private static IReadOnlyList<string> ParseErrors(string body) => TaskDefinitionJson.Parse<TaskDefinition>(Encoding.UTF8.GetBytes(body)).Errors;

    [Theory]
    [InlineData("", "body:")]
    [InlineData("null", "body:")]
    [InlineData("[]", "body:")]
    [InlineData("{", "body:")]
    [InlineData("""{"mem":"32"}""", "mem: must be a number")]
    [InlineData("""{"mem":true}""", "mem: must be a number")]
    [InlineData("""{"task_retries":1.5}""", "task_retries: must be a whole number")]
    [InlineData("""{"cmd":5}""", "cmd: must be a string")]
    [InlineData("""{"env":{"A":1}}""", "env.A: must be a string")]
    [InlineData("""{"container":"x"}""", "container: must be an object")]
    [InlineData("""{"constraints":"x"}""", "constraints: must be an array")]
    public void BadJson_GivesOneErrorNamingTheField(string body, string expectedStart) =>
        Assert.StartsWith(expectedStart, Assert.Single(ParseErrors(body)), StringComparison.Ordinal);

    [Fact]
    public void HugeNumber_ParsesAsInfinity_ThenFailsValidationNamingTheField()
    {
        var (definition, errors) = TaskDefinitionJson.Parse<TaskDefinition>(Encoding.UTF8.GetBytes("""{"id":"a","container":{"docker":{"image":"i"}},"mem":1e400}"""));

        Assert.Empty(errors);
        Assert.StartsWith("mem: must be between 4 and 64000", Assert.Single(TaskDefinitionValidator.Validate(definition!, TaskLimits.Default)), StringComparison.Ordinal);
    }

    [Fact]
    public void Wire_IsSnakeCase_ExceptHippoCamelCaseVolumeFields()
    {
        var (definition, errors) = TaskDefinitionJson.Parse<TaskDefinition>(Encoding.UTF8.GetBytes("""
            {"id":"a","task_retries":3,"max_concurrent":4,"container":{"docker":{"image":"i","force_pull_image":true},
             "volumes":[{"hostPath":"/h","containerPath":"/c","mode":"RO"}]}}
            """));

        Assert.Empty(errors);
        Assert.Equal(3, definition!.TaskRetries);
        Assert.Equal(4, definition.MaxConcurrent);
        Assert.True(definition.Container!.Docker!.ForcePullImage);
        Assert.Equal("/h", definition.Container.Volumes![0].HostPath);
        Assert.Equal("/c", definition.Container.Volumes[0].ContainerPath);
    }

    [Fact]
    public void RandomMutations_NeverThrow_AndEitherValidateOrNameAField()
    {
        const string valid = """{"id":"f","container":{"docker":{"image":"busybox"}},"cmd":"true","mem":32,"cpus":0.5,"env":{"A":"b"},"task_retries":1}""";
        var random = new Random(7);
        JsonNode?[] values = [JsonValue.Create(-1), JsonValue.Create(1e12), JsonValue.Create("x"), JsonValue.Create(false), new JsonArray(), new JsonObject(), null];
        string[] fields = ["id", "container", "cmd", "mem", "cpus", "env", "task_retries", "system_retries", "max_concurrent"];
        for (var i = 0; i < 500; i++)
        {
            var node = JsonNode.Parse(valid)!.AsObject();
            node[fields[random.Next(fields.Length)]] = values[random.Next(values.Length)]?.DeepClone();
            var text = node.ToJsonString();
            if (random.Next(4) == 0)
                text = text[..random.Next(text.Length)];

            var (definition, errors) = TaskDefinitionJson.Parse<TaskDefinition>(Encoding.UTF8.GetBytes(text));
            var all = definition is null ? errors : TaskDefinitionValidator.Validate(definition, TaskLimits.Default);
            Assert.All(all, error => Assert.Contains(':', error));
            Assert.True(definition is not null || errors.Count > 0);
        }
    }
}
