using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>Queues on the real server and engine, with the cron source (which needs no outside service).</summary>
public sealed class QueuesTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private readonly LongshoreServer _server = fixture.Server;

    public static Dictionary<string, object> CronQueue(string id, string cron, string cmd = "echo fired $HIPPO_DATA", int maxBacklog = 0) =>
        QueueDefinitions.Create(id, cmd, "cron",
            new Dictionary<string, object> { ["cronstring"] = cron, ["maxbacklog"] = maxBacklog.ToString(System.Globalization.CultureInfo.InvariantCulture) });

    [Fact]
    public async Task CronQueue_EachFireBecomesOneTask_WhoseContainerGetsThePayload()
    {
        var id = Families.New("cronq");
        using (var created = await _server.Http.PostAsJsonAsync("/queues/", CronQueue(id, "*/2 * * * * *")))
            Assert.Equal(id, JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString());

        var runs = await WaitForRunsAsync(id, 3, TimeSpan.FromSeconds(30));
        await _server.Http.GetAsync($"/queues/{id}/disable/");

        var payloads = runs.Select(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!).ToList();
        Assert.Equal(payloads.Count, payloads.Distinct().Count());
        var first = runs.Last();
        await _server.WaitForEndAsync(first.GetProperty("mesos_id").GetString()!);
        var logs = JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/{first.GetProperty("mesos_id").GetString()}/logs/")).RootElement;
        Assert.Equal($"fired {first.GetProperty("env").GetProperty("HIPPO_DATA").GetString()}\n", logs.GetProperty("stdout").GetString());
        var queue = JsonDocument.Parse(await _server.Http.GetStringAsync($"/queues/{id}/")).RootElement;
        Assert.Equal("DISABLED", queue.GetProperty("queue").GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, queue.GetProperty("stats").GetProperty("last_error").ValueKind);
    }

    [Fact]
    public async Task DisabledQueue_MakesNoTasks_UntilEnabled()
    {
        var id = Families.New("cronoff");
        var definition = CronQueue(id, "* * * * * *");
        ((Dictionary<string, object>)definition["queue"]!)["status"] = "DISABLED";
        using (var created = await _server.Http.PostAsJsonAsync("/queues/", definition))
            Assert.Equal(HttpStatusCode.OK, created.StatusCode);

        await Task.Delay(3000);
        Assert.Equal(0, await CountRunsAsync(id));
        await _server.Http.GetAsync($"/queues/{id}/enable/");
        await WaitForRunsAsync(id, 1, TimeSpan.FromSeconds(15));
        await _server.Http.DeleteAsync($"/queues/{id}/");
        using var gone = await _server.Http.GetAsync($"/queues/{id}/");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Theory]
    [InlineData("""{"id":"q","container":{"docker":{"image":"busybox"}}}""", "queue: is required")]
    [InlineData("""{"id":"q","container":{"docker":{"image":"busybox"}},"queue":{"type":"kafka"}}""", "queue.type: must be one of")]
    [InlineData("""{"id":"q","container":{"docker":{"image":"busybox"}},"queue":{"type":"redis","redis":{"host":"127.0.0.1"}}}""", "queue.redis.name: is required")]
    [InlineData("""{"id":"q","container":{"docker":{"image":"busybox"}},"queue":{"type":"redis","redis":{"name":"q","port":"x"}}}""", "queue.redis.port: must be a port number")]
    [InlineData("""{"id":"q","container":{"docker":{"image":"busybox"}},"queue":{"type":"cron","batch_size":"2","cron":{"cronstring":"* * * * *"}}}""", "queue.batch_size: must be a whole number")]
    [InlineData("""{"id":"q","container":{"docker":{"image":"busybox"}},"queue":{"type":"cron","status":"ON","cron":{"cronstring":"* * * * *"}}}""", "queue.status: must be one of ENABLED, DISABLED")]
    [InlineData("""{"id":"q","mem":1,"container":{"docker":{"image":"busybox"}},"queue":{"type":"cron","cron":{"cronstring":"* * * * *"}}}""", "mem: must be between")]
    public async Task InvalidQueue_Is400NamingTheField_NothingStored(string body, string expected)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await _server.Http.PostAsync("/queues/", content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        using var missing = await _server.Http.GetAsync("/queues/q/");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task QueueTypes_DescribeTheirInputs()
    {
        var types = JsonDocument.Parse(await _server.Http.GetStringAsync("/queuetypes/")).RootElement;
        var cron = types.EnumerateArray().Single(t => t.GetProperty("type").GetString() == "cron");

        Assert.Equal("cron", cron.GetProperty("namespace").GetString());
        var timezone = cron.GetProperty("inputs").GetProperty("timezone");
        Assert.Equal(("text", "UTC", false), (timezone.GetProperty("input").GetString(), timezone.GetProperty("default").GetString(), timezone.GetProperty("required").GetBoolean()));
        var redis = types.EnumerateArray().Single(t => t.GetProperty("type").GetString() == "redis").GetProperty("inputs");
        Assert.True(redis.GetProperty("name").GetProperty("required").GetBoolean());
        Assert.False(redis.GetProperty("name").TryGetProperty("default", out _));
        Assert.Equal(("password", true), (redis.GetProperty("password").GetProperty("input").GetString(), redis.GetProperty("password").GetProperty("secret").GetBoolean()));
    }

    [Fact]
    public async Task Cli_QueueCreateListDisableRemove()
    {
        var id = Families.New("cliq");
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(CronQueue(id, "0 0 1 1 *")));
        var server = $"http://127.0.0.1:{_server.Port}";

        var created = await CliProcess.RunAsync(["queue", "create", "-f", file, "--server", server]);
        var listed = await CliProcess.RunAsync(["queue", "ls", "--json", "--server", server]);
        var disabled = await CliProcess.RunAsync(["queue", "disable", id, "--server", server]);
        var removed = await CliProcess.RunAsync(["queue", "rm", id, "--server", server]);
        File.Delete(file);

        Assert.Equal((0, id), (created.ExitCode, created.Stdout.Trim()));
        Assert.Contains(JsonDocument.Parse(listed.Stdout).RootElement.EnumerateArray(), q => q.GetProperty("id").GetString() == id);
        Assert.Equal($"{id} DISABLED", disabled.Stdout.Trim());
        Assert.Equal(0, removed.ExitCode);
    }

    private async Task<int> CountRunsAsync(string id) => (await _server.RunsAsync(id)).Count;

    private async Task<List<JsonElement>> WaitForRunsAsync(string id, int count, TimeSpan timeout)
    {
        await Eventually.WaitUntilAsync(async () => (await _server.RunsAsync(id)).Count >= count, timeout, () => _server.Output);
        return await _server.RunsAsync(id);
    }
}
