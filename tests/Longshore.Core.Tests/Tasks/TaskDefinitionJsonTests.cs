using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Tasks;

public sealed class TaskDefinitionJsonTests
{
    private const string ValidBody = """
        {"id":"f","container":{"type":"DOCKER","docker":{"image":"busybox","network":"HOST","force_pull_image":true},
         "volumes":[{"hostPath":"/data/in","containerPath":"/in","mode":"RO"}]},
         "cmd":"echo café","mem":32,"cpus":0.5,"env":{"A":"b","LANG":"日本"},
         "constraints":[["hostname","UNIQUE"],["rack","LIKE","r[0-9]+"]],
         "task_retries":1,"system_retries":3,"max_concurrent":4}
        """;

    private static readonly TaskLimits Limits = new() { AllowedHostPaths = ["/data"] };

    private static (TaskDefinition? Value, IReadOnlyList<string> Errors) Parse(string body) =>
        TaskDefinitionJson.Parse<TaskDefinition>(Encoding.UTF8.GetBytes(body));

    private static string SingleParseError(string body)
    {
        var (value, errors) = Parse(body);
        Assert.Null(value);
        return Assert.Single(errors);
    }

    [Theory]
    [InlineData("", "body: must be a JSON object")]
    [InlineData("null", "body: must be a JSON object, got null")]
    [InlineData("[]", "body: must be an object")]
    [InlineData("42", "body: must be an object")]
    [InlineData("\"x\"", "body: must be an object")]
    [InlineData("{", "body: is not valid JSON")]
    [InlineData("   ", "body: is not valid JSON")]
    [InlineData("{} {}", "body: is not valid JSON")]
    [InlineData("{/* note */}", "body: is not valid JSON")]
    public void Parse_BodyNotAnObject_GivesOneBodyError(string body, string expectedStart) =>
        Assert.StartsWith(expectedStart, SingleParseError(body), StringComparison.Ordinal);

    [Theory]
    [InlineData("""{"mem":"32"}""", "mem: must be a number")]
    [InlineData("""{"mem":true}""", "mem: must be a number")]
    [InlineData("""{"mem":null}""", "mem: must be a number")]
    [InlineData("""{"cpus":[1]}""", "cpus: must be a number")]
    [InlineData("""{"task_retries":1.5}""", "task_retries: must be a whole number in range")]
    [InlineData("""{"max_concurrent":3000000000}""", "max_concurrent: must be a whole number in range")]
    [InlineData("""{"system_retries":"2"}""", "system_retries: must be a whole number in range")]
    [InlineData("""{"id":7}""", "id: must be a string")]
    [InlineData("""{"cmd":5}""", "cmd: must be a string")]
    [InlineData("""{"env":{"A":{}}}""", "env.A: must be an object whose values are strings, numbers or true/false")]
    [InlineData("""{"env":{"A":[1]}}""", "env.A: must be an object whose values are strings, numbers or true/false")]
    [InlineData("""{"env":[]}""", "env: must be an object whose values are strings, numbers or true/false")]
    [InlineData("""{"container":"x"}""", "container: must be an object")]
    [InlineData("""{"container":{"docker":[]}}""", "container.docker: must be an object")]
    [InlineData("""{"container":{"docker":{"force_pull_image":"yes"}}}""", "container.docker.force_pull_image: must be true or false")]
    [InlineData("""{"container":{"volumes":{}}}""", "container.volumes: must be an array")]
    [InlineData("""{"container":{"volumes":[{"hostPath":5}]}}""", "container.volumes[0].hostPath: must be a string")]
    [InlineData("""{"constraints":"x"}""", "constraints: must be an array")]
    [InlineData("""{"constraints":["x"]}""", "constraints[0]: must be an array")]
    [InlineData("""{"constraints":[["a",1]]}""", "constraints[0][1]: must be a string")]
    public void Parse_ValueOfTheWrongType_GivesOneErrorNamingTheField(string body, string expected) =>
        Assert.Equal(expected, SingleParseError(body));

    [Fact]
    public void Parse_EnvNumbersAndBooleans_KeptAsTheirText_AsHippoDoes()
    {
        var (definition, errors) = Parse("""{"env":{"RETRIES":3,"RATIO":1.5,"BIG":1e3,"ON":true,"OFF":false,"NAME":"x"},"cmd":"true"}""");

        Assert.Empty(errors);
        Assert.Equal(new Dictionary<string, string> { ["RETRIES"] = "3", ["RATIO"] = "1.5", ["BIG"] = "1e3", ["ON"] = "True", ["OFF"] = "False", ["NAME"] = "x" },
            definition!.Env);
        Assert.Null(Parse("""{"env":null}""").Value!.Env);
        var written = JsonSerializer.Serialize(definition, TaskDefinitionJson.Options);
        Assert.Contains("\"env\":{\"RETRIES\":\"3\",", written, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_TooDeeplyNested_SaysSoInsteadOfThrowing()
    {
        var body = """{"id":"a","extra":""" + new string('[', 40) + new string(']', 40) + "}";

        Assert.EndsWith(": is nested too deeply", SingleParseError(body), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_TrailingComma_GivesOneErrorWithItsPosition() =>
        Assert.Matches(@"^[a-z_.]+: is not valid JSON \(line 1, byte \d+\)$", SingleParseError("""{"id":"a",}"""));

    [Fact]
    public void Parse_InvalidUtf8InAString_GivesOneErrorInsteadOfThrowing()
    {
        var body = Encoding.UTF8.GetBytes("""{"id":"a?","container":{"docker":{"image":"busybox"}}}""");
        body[Array.IndexOf(body, (byte)'?')] = 0xFF;

        var (value, errors) = TaskDefinitionJson.Parse<TaskDefinition>(body);

        Assert.Null(value);
        Assert.Contains(":", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"id":"\ud800"}""", "id:")]
    [InlineData("""{"env":{"A":"\udc00x"}}""", "env.A:")]
    public void Parse_LoneSurrogateEscape_GivesOneErrorNamingTheField(string body, string expectedStart) =>
        Assert.StartsWith(expectedStart, SingleParseError(body), StringComparison.Ordinal);

    [Fact]
    public void ParseThenValidate_MemOverflowingDouble_GivesOneMemError()
    {
        var (definition, parseErrors) = Parse("""{"id":"a","container":{"docker":{"image":"i"}},"mem":1e400}""");
        IReadOnlyList<string> errors = definition is null ? parseErrors : TaskDefinitionValidator.Validate(definition, TaskLimits.Default);

        Assert.StartsWith("mem:", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_FullBody_ReadsSnakeCaseFieldsAndCamelCaseVolumeFields()
    {
        var (definition, errors) = Parse(ValidBody);

        Assert.Empty(errors);
        Assert.NotNull(definition);
        Assert.Equal("f", definition.Id);
        Assert.Equal("echo caf\u00e9", definition.Cmd);
        Assert.Equal(32, definition.Mem);
        Assert.Equal(0.5, definition.Cpus);
        Assert.Equal(1, definition.TaskRetries);
        Assert.Equal(3, definition.SystemRetries);
        Assert.Equal(4, definition.MaxConcurrent);
        Assert.Equal("\u65e5\u672c", definition.Env!["LANG"]);
        Assert.Equal(["rack", "LIKE", "r[0-9]+"], definition.Constraints![1]);
        Assert.Equal("HOST", definition.Container!.Docker!.Network);
        Assert.True(definition.Container.Docker.ForcePullImage);
        var volume = Assert.Single(definition.Container.Volumes!);
        Assert.Equal(new VolumeSpec { HostPath = "/data/in", ContainerPath = "/in", Mode = "RO" }, volume);
        Assert.Empty(TaskDefinitionValidator.Validate(definition, Limits));
    }

    [Fact]
    public void Parse_CamelCaseTopLevelFields_AreIgnoredNotRead()
    {
        var (definition, errors) = Parse("""{"id":"a","taskRetries":5,"maxConcurrent":1,"systemRetries":0}""");

        Assert.Empty(errors);
        Assert.Equal(0, definition!.TaskRetries);
        Assert.Equal(10, definition.MaxConcurrent);
        Assert.Equal(2, definition.SystemRetries);
    }

    [Fact]
    public void Parse_SnakeCaseVolumeFields_AreIgnoredNotRead()
    {
        var (definition, errors) = Parse("""{"container":{"volumes":[{"host_path":"/h","container_path":"/c"}]}}""");

        Assert.Empty(errors);
        var volume = Assert.Single(definition!.Container!.Volumes!);
        Assert.Null(volume.HostPath);
        Assert.Null(volume.ContainerPath);
        Assert.Equal("RW", volume.Mode);
    }

    [Fact]
    public void Parse_RandomMutationsOfAValidBody_NeverThrowAndEitherValidateOrNameAField()
    {
        var (baseline, baselineErrors) = Parse(ValidBody);
        Assert.Empty(baselineErrors);
        Assert.Empty(TaskDefinitionValidator.Validate(baseline!, Limits));

        var random = new Random(20261123);
        var validBytes = Encoding.UTF8.GetBytes(ValidBody);
        int parsed = 0, valid = 0;
        for (var i = 0; i < 200; i++)
        {
            var body = (i % 3) switch
            {
                0 => Encoding.UTF8.GetBytes(DropOneNode(random)),
                1 => Encoding.UTF8.GetBytes(ReplaceOneNode(random)),
                _ => validBytes[..random.Next(validBytes.Length)],
            };

            TaskDefinition? definition = null;
            IReadOnlyList<string> errors = [];
            var thrown = Record.Exception(() =>
            {
                (definition, var parseErrors) = TaskDefinitionJson.Parse<TaskDefinition>(body);
                errors = definition is null ? parseErrors : TaskDefinitionValidator.Validate(definition, Limits);
                if (definition is null)
                    Assert.Single(parseErrors);
                else
                    Assert.Empty(parseErrors);
            });

            var shown = Encoding.UTF8.GetString(body);
            Assert.True(thrown is null, $"mutation {i}: {shown}\n{thrown}");
            Assert.True(definition is not null || errors.Count > 0, $"mutation {i}: no definition and no error for {shown}");
            foreach (var error in errors)
                Assert.True(error.IndexOf(':', StringComparison.Ordinal) > 0, $"mutation {i}: '{error}' names no field for {shown}");
            parsed += definition is null ? 0 : 1;
            valid += definition is not null && errors.Count == 0 ? 1 : 0;
        }

        // The mutations must reach all three outcomes, or the loop proves little.
        Assert.InRange(valid, 1, parsed - 1);
        Assert.InRange(parsed, valid + 1, 199);
    }

    private static string DropOneNode(Random random)
    {
        var root = JsonNode.Parse(ValidBody)!;
        var node = PickDescendant(root, random);
        if (node.Parent is JsonObject parent)
            parent.Remove(node.GetPropertyName());
        else
            node.Parent!.AsArray().RemoveAt(node.GetElementIndex());
        return root.ToJsonString();
    }

    private static string ReplaceOneNode(Random random)
    {
        var root = JsonNode.Parse(ValidBody)!;
        var node = PickDescendant(root, random);
        var replacement = RandomValueOtherThan(Kind(node), random, depth: 0);
        if (node.Parent is JsonObject parent)
            parent[node.GetPropertyName()] = replacement;
        else
            node.Parent!.AsArray()[node.GetElementIndex()] = replacement;
        return root.ToJsonString();
    }

    private static JsonNode PickDescendant(JsonNode root, Random random)
    {
        var all = new List<JsonNode>();
        void Walk(JsonNode node)
        {
            if (!ReferenceEquals(node, root))
                all.Add(node);
            IEnumerable<JsonNode?> children = node switch
            {
                JsonObject o => o.Select(pair => pair.Value),
                JsonArray a => a,
                _ => [],
            };
            foreach (var child in children.OfType<JsonNode>())
                Walk(child);
        }

        Walk(root);
        return all[random.Next(all.Count)];
    }

    private static JsonValueKind Kind(JsonNode? node) => node?.GetValueKind() switch
    {
        null => JsonValueKind.Null,
        JsonValueKind.False => JsonValueKind.True,
        var kind => kind.Value,
    };

    private static JsonNode? RandomValueOtherThan(JsonValueKind kind, Random random, int depth)
    {
        while (true)
        {
            var candidate = RandomValue(random, depth);
            if (Kind(candidate) != kind)
                return candidate;
        }
    }

    private static readonly string[] RandomNumbers = ["0", "-1", "1.5", "3000000000", "1e400", "-1e400", "1e-400", "64001", "0.001"];
    private static readonly string[] RandomStrings = ["", "x", "BRIDGE", "/data/../etc", "caf\u00e9", "a\u0000b", "(", "1BAD", new string('z', 300)];
    private static readonly string[] RandomKeys = ["A", "id", "mem", "hostPath", "docker", "1BAD"];

    private static JsonNode? RandomValue(Random random, int depth) => random.Next(depth >= 2 ? 4 : 6) switch
    {
        0 => JsonNode.Parse(RandomNumbers[random.Next(RandomNumbers.Length)]),
        1 => JsonValue.Create(RandomStrings[random.Next(RandomStrings.Length)]),
        2 => JsonValue.Create(random.Next(2) == 0),
        3 => null,
        4 => new JsonArray([.. Enumerable.Range(0, random.Next(3)).Select(_ => RandomValue(random, depth + 1))]),
        _ => new JsonObject(Enumerable.Range(0, random.Next(3)).Select(n => KeyValuePair.Create(RandomKeys[random.Next(RandomKeys.Length)] + n, RandomValue(random, depth + 1)))),
    };
}
