using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>The Hippo-compatible routes: errors, paging, deletion, health, metrics and the API description.</summary>
public sealed class TasksApiTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private readonly LongshoreServer _server = fixture.Server;

    [Fact]
    public async Task UnknownTask_Is404WithJsonError()
    {
        foreach (var path in (string[])["/tasks/nope.1/", "/tasks/nope.1/logs/", "/tasks/nope.1/kill/"])
        {
            using var response = await _server.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Contains("nope.1", (await ErrorAsync(response)), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Delete_RefusesActiveRun_RemovesEndedOne()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("del"), "sleep 30"));
        await _server.WaitForStateAsync(id, state => state == "TASK_RUNNING");

        using (var refused = await _server.Http.DeleteAsync($"/tasks/{id}/"))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Contains("kill it first", await ErrorAsync(refused), StringComparison.Ordinal);
        }

        await _server.Http.PostAsync($"/tasks/{id}/kill/", null);
        await _server.WaitForEndAsync(id);
        using (var killAgain = await _server.Http.PostAsync($"/tasks/{id}/kill/", null))
            Assert.Equal(HttpStatusCode.Conflict, killAgain.StatusCode);
        using (var deleted = await _server.Http.DeleteAsync($"/tasks/{id}/"))
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        using var gone = await _server.Http.GetAsync($"/tasks/{id}/");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Paging_WalksNewestFirstWithoutOverlap()
    {
        var family = Families.New("page");
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
            ids.Add(await _server.PostTaskAsync(Tasks.Definition(family, "true")));

        var seen = new List<string>();
        string? after = null;
        while (true)
        {
            var url = $"/tasks/?id={family}&limit=2" + (after is null ? string.Empty : $"&after={after}");
            var page = JsonDocument.Parse(await _server.Http.GetStringAsync(url)).RootElement;
            if (page.GetArrayLength() == 0)
                break;
            Assert.InRange(page.GetArrayLength(), 1, 2);
            var pageIds = page.EnumerateArray().Select(run => run.GetProperty("mesos_id").GetString()!).ToList();
            seen.AddRange(pageIds);
            after = pageIds[^1];
        }

        Assert.Equal(Enumerable.Reverse(ids), seen);
    }

    [Theory]
    [InlineData("/tasks/?limit=0", "limit")]
    [InlineData("/tasks/?limit=abc", "limit")]
    [InlineData("/tasks/?limit=100000", "limit")]
    [InlineData("/tasks/?state=RUNNING", "state")]
    [InlineData("/tasks/?after=missing.1", "after")]
    [InlineData("/tasks/missing.1/logs/?follow=maybe", "missing.1")]
    public async Task BadQuery_Is4xxNamingTheParameter(string path, string named)
    {
        using var response = await _server.Http.GetAsync(path);
        Assert.InRange((int)response.StatusCode, 400, 404);
        Assert.Contains(named, await ErrorAsync(response), StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostPathVolume_RefusedWhenNotAllowlisted()
    {
        var definition = Tasks.Definition(Families.New("vol"), "true",
            volumes: [new Dictionary<string, string> { ["hostPath"] = "/etc", ["containerPath"] = "/host-etc", ["mode"] = "RO" }]);

        using var response = await _server.Http.PostAsJsonAsync("/tasks/", definition);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("container.volumes[0].hostPath", await ErrorAsync(response), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoHundredMalformedBodies_All4xxNamingAField_NothingStored()
    {
        var before = await CountRunsAsync();
        var bodies = MalformedBodies().Take(200).ToList();
        Assert.Equal(200, bodies.Count);

        foreach (var body in bodies)
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new("application/json");
            using var response = await _server.Http.PostAsync("/tasks/", content);
            var status = (int)response.StatusCode;
            var text = Encoding.UTF8.GetString(body);
            Assert.True(status is >= 400 and < 500, $"{status} for body {text[..Math.Min(200, text.Length)]}");
            var error = await ErrorAsync(response);
            Assert.Matches(@"^(body|id|container|mem|cpus|cmd|env|constraints|task_retries|system_retries|max_concurrent)[^:]*:", error);
        }

        Assert.Equal(before, await CountRunsAsync());
    }

    [Fact]
    public async Task Healthz_SaysLeaderAndEngine()
    {
        var health = JsonDocument.Parse(await _server.Http.GetStringAsync("/healthz")).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.True(health.GetProperty("leader").GetBoolean());
        Assert.True(health.GetProperty("engine").GetProperty("reachable").GetBoolean());
        Assert.True(health.GetProperty("scheduler").GetProperty("reconciled").GetBoolean());
        // The store (SQLite here) keeps the machine's time: measured, the offset is nothing.
        Assert.InRange(health.GetProperty("clock").GetProperty("offset_seconds").GetDouble(), -0.05, 0.05);
    }

    [Fact]
    public async Task Metrics_CountRunsByStateAndLaunches()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("metrics"), "true"));
        await _server.WaitForEndAsync(id);

        var text = await _server.Http.GetStringAsync("/metrics");

        var finished = text.Split('\n').Single(line => line.StartsWith("longshore_tasks{state=\"TASK_FINISHED\"}", StringComparison.Ordinal));
        Assert.True(double.Parse(finished.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) >= 1);
        Assert.Contains("longshore_launches_total", text, StringComparison.Ordinal);
        Assert.Contains("longshore_run_ends_total{state=\"TASK_FINISHED\"}", text, StringComparison.Ordinal);
        Assert.Contains("longshore_scheduler_loop_seconds_count", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenApiDocument_DescribesTheTaskRoutes()
    {
        var doc = JsonDocument.Parse(await _server.Http.GetStringAsync("/openapi/v1.json")).RootElement;
        var paths = doc.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains(paths, p => p.StartsWith("/tasks", StringComparison.Ordinal) && p.Contains("kill", StringComparison.Ordinal));
        Assert.Contains(paths, p => p.StartsWith("/tasks", StringComparison.Ordinal) && p.Contains("logs", StringComparison.Ordinal));
    }

    private async Task<int> CountRunsAsync() =>
        JsonDocument.Parse(await _server.Http.GetStringAsync("/tasks/?limit=1000")).RootElement.GetArrayLength();

    private static async Task<string> ErrorAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        return JsonDocument.Parse(body).RootElement.GetProperty("error").GetString()!;
    }

    /// <summary>Hand-written bad bodies first, then random mutations of a valid one, none of them valid.</summary>
    private static IEnumerable<byte[]> MalformedBodies()
    {
        string[] fixedBodies =
        [
            "", "null", "[]", "42", "\"task\"", "{", "{\"id\":", "{\"id\":\"a\",}", "{'id':'a'}", "not json",
            "{}", "{\"id\":\"a\"}", "{\"id\":\"\",\"container\":{\"docker\":{\"image\":\"busybox\"}}}",
            "{\"id\":\"a b\",\"container\":{\"docker\":{\"image\":\"busybox\"}}}",
            "{\"id\":\"a\",\"container\":{\"docker\":{}}}", "{\"id\":\"a\",\"container\":{}}", "{\"id\":\"a\",\"container\":null}",
            "{\"id\":\"a\",\"container\":\"busybox\"}", "{\"id\":1,\"container\":{\"docker\":{\"image\":\"busybox\"}}}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\",\"network\":\"NAT\"}}}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"},\"volumes\":[{\"hostPath\":\"/tmp\",\"containerPath\":\"/x\",\"mode\":\"XX\"}]}}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"mem\":1e400}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"mem\":-1}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"mem\":\"32\"}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"cpus\":1000}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"task_retries\":99999999999}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"task_retries\":1.5}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"system_retries\":-1}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"max_concurrent\":0}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"env\":{\"A\":{}}}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"env\":[\"A=1\"]}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"env\":{\"1A\":\"x\"}}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"cmd\":[\"echo\"]}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"constraints\":[[\"host\",\"NEAR\",\"x\"]]}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"constraints\":\"x\"}",
            "{\"id\":\"" + new string('a', 5000) + "\",\"container\":{\"docker\":{\"image\":\"busybox\"}}}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"cmd\":\"" + new string('x', 300_000) + "\"}",
            "{\"id\":\"a\",\"container\":{\"docker\":{\"image\":\"busybox\"}},\"cmd\":\"" + new string('x', 2_000_000) + "\"}",
            string.Concat(Enumerable.Repeat("[", 100)) + string.Concat(Enumerable.Repeat("]", 100)),
        ];
        foreach (var body in fixedBodies)
            yield return Encoding.UTF8.GetBytes(body);

        var random = new Random(20261123);
        var valid = """{"id":"fuzz","container":{"type":"DOCKER","docker":{"image":"busybox","network":"BRIDGE"},"volumes":[]},"cmd":"true","mem":32,"cpus":0.5,"env":{"A":"b"},"task_retries":1,"system_retries":1,"max_concurrent":2}""";
        string[] fields = ["id", "container", "cmd", "mem", "cpus", "env", "task_retries", "system_retries", "max_concurrent"];
        JsonNode?[] wrongValues = [JsonValue.Create(-5), JsonValue.Create(1e9), JsonValue.Create("x y"), JsonValue.Create(true), new JsonArray(1, 2), new JsonObject { ["k"] = 1 }, null];
        while (true)
        {
            var node = JsonNode.Parse(valid)!.AsObject();
            var field = fields[random.Next(fields.Length)];
            var kind = random.Next(3);
            if (kind == 0 && field is "id" or "container")
            {
                node.Remove(field);
            }
            else
            {
                var value = wrongValues[random.Next(wrongValues.Length)]?.DeepClone();
                if (!StillValid(field, value))
                    node[field] = value;
                else
                    node[field] = JsonValue.Create(-1);
            }

            var text = node.ToJsonString();
            if (kind == 2)
                text = text[..random.Next(1, text.Length - 1)];
            yield return Encoding.UTF8.GetBytes(text);
        }
    }

    // Values that happen to be acceptable for the field would make a valid body: replace those.
    private static bool StillValid(string field, JsonNode? value) => (field, value) switch
    {
        ("cmd", null) or ("env", null) => true,
        // Numbers and booleans in env are kept as text, as Hippo does.
        ("env", JsonObject o) when o.All(pair => pair.Value is JsonValue) => true,
        ("cmd", JsonValue v) when v.TryGetValue<string>(out _) => true,
        ("id", JsonValue v) when v.TryGetValue<string>(out var s) && !s.Contains(' ', StringComparison.Ordinal) => true,
        ("cpus", JsonValue v) when v.TryGetValue<int>(out var n) && n is >= 1 and <= 12 => true,
        _ => false,
    };
}
