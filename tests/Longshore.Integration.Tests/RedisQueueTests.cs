using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;
using StackExchange.Redis;

namespace Longshore.Integration.Tests;

/// <summary>The redis source against a real Redis server and the real engine.</summary>
public sealed class RedisQueueTests : IAsyncLifetime
{
    private static readonly string RedisHost = Environment.GetEnvironmentVariable("LONGSHORE_TEST_REDIS") ?? "127.0.0.1:6379";
    private ConnectionMultiplexer _redis = null!;
    private LongshoreServer _server = null!;

    public async Task InitializeAsync()
    {
        _redis = await ConnectionMultiplexer.ConnectAsync(RedisHost);
        _server = await LongshoreServer.StartAsync("--retry-backoff-base", "0.2");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private IDatabase Db => _redis.GetDatabase();

    private static Dictionary<string, object> Queue(string id, string list, string cmd, int batchSize = 1, string status = "ENABLED")
    {
        var definition = QueueDefinitions.Create(id, cmd, "redis",
            new Dictionary<string, string> { ["host"] = RedisHost.Split(':')[0], ["port"] = RedisHost.Split(':')[1], ["name"] = list },
            new() { ["batch_size"] = batchSize, ["frequency_seconds"] = 1, ["status"] = status });
        return definition;
    }

    [Fact]
    public async Task PushedMessages_BecomeTasks_WithTheirPayload_AndLeaveTheLists()
    {
        var id = Families.New("redisq");
        var list = "list-" + id;
        await Db.ListRightPushAsync(list, ["one", "two \"quoted\"; $(x)", "three"]);
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, list, "printf '%s' $HIPPO_DATA"))).EnsureSuccessStatusCode();

        var runs = await WaitForEndedAsync(id, 3);

        Assert.All(runs, run => Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString()));
        var outputs = new List<string>();
        foreach (var run in runs)
            outputs.Add(JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/{run.GetProperty("mesos_id").GetString()}/logs/")).RootElement.GetProperty("stdout").GetString()!);
        Assert.Equal(["one", "three", "two \"quoted\"; $(x)"], outputs.Order());
        await WaitUntilAsync(async () => await Db.ListLengthAsync($"longshore:processing:{id}") == 0);
        Assert.Equal(0, await Db.ListLengthAsync(list));
    }

    [Fact]
    public async Task FailedTask_ReturnsItsMessageToTheList_ForRedelivery()
    {
        var id = Families.New("redisfail");
        var list = "list-" + id;
        await Db.ListRightPushAsync(list, "poison");
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, list, "exit 9"))).EnsureSuccessStatusCode();

        // Failed for good (no retries): released, polled again, failed again — the message is never lost.
        await WaitUntilAsync(async () => (await RunsAsync(id)).Count(r => r.GetProperty("mesos_state").GetString() == "TASK_FAILED") >= 2, TimeSpan.FromSeconds(60));
        await _server.Http.GetAsync($"/queues/{id}/disable/");
        await WaitUntilAsync(async () => (await RunsAsync(id)).All(r => TestStates.IsTerminal(r.GetProperty("mesos_state").GetString()!)), TimeSpan.FromSeconds(60));
        await WaitUntilAsync(async () => await Db.ListLengthAsync(list) == 1 && await Db.ListLengthAsync($"longshore:processing:{id}") == 0);

        Assert.Equal("poison", (string?)await Db.ListGetByIndexAsync(list, 0));
        Assert.All(await RunsAsync(id), run => Assert.Equal("poison", run.GetProperty("env").GetProperty("HIPPO_DATA").GetString()));
    }

    [Fact]
    public async Task OnCreate_AcknowledgesWhenTheTaskIsRecorded_SoAFailureIsNotRedelivered()
    {
        var id = Families.New("redisoncreate");
        var list = "list-" + id;
        await Db.ListRightPushAsync(list, "once");
        var definition = Queue(id, list, "sleep 2; exit 9");
        ((Dictionary<string, object>)definition["queue"])["ack_mode"] = "on_create";
        (await _server.Http.PostAsJsonAsync("/queues/", definition)).EnsureSuccessStatusCode();

        // Acknowledged while the task still runs: both lists are empty before it ends.
        await WaitUntilAsync(async () => (await RunsAsync(id)).Count == 1);
        await WaitUntilAsync(async () => await Db.ListLengthAsync($"longshore:processing:{id}") == 0);
        Assert.False(TestStates.IsTerminal((await RunsAsync(id))[0].GetProperty("mesos_state").GetString()!));
        await WaitUntilAsync(async () => (await RunsAsync(id)).All(r => r.GetProperty("mesos_state").GetString() == "TASK_FAILED"));
        await Task.Delay(3000);

        Assert.Single(await RunsAsync(id));
        Assert.Equal(0, await Db.ListLengthAsync(list));
    }

    [Fact]
    public async Task Batches_JoinPayloads_AndBacklogIsShownWhileDisabled()
    {
        var id = Families.New("redisbatch");
        var list = "list-" + id;
        await Db.ListRightPushAsync(list, ["a", "b", "c", "d", "e"]);
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, list, "true", batchSize: 3, status: "DISABLED"))).EnsureSuccessStatusCode();

        var queue = JsonDocument.Parse(await _server.Http.GetStringAsync($"/queues/{id}/")).RootElement;
        Assert.Equal(5, queue.GetProperty("stats").GetProperty("backlog").GetInt64());
        await _server.Http.GetAsync($"/queues/{id}/enable/");
        var runs = await WaitForEndedAsync(id, 2);

        Assert.Equal(["a|b|c", "d|e"], runs.Select(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!).Order());
    }

    [Fact]
    public async Task KillNineWhileTasksRun_ThenRestart_EveryMessageFinishesExactlyOnce()
    {
        var id = Families.New("rediscrash");
        var list = "list-" + id;
        var messages = Enumerable.Range(1, 6).Select(i => "m" + i).ToArray();
        await Db.ListRightPushAsync(list, messages.Select(m => (RedisValue)m).ToArray());
        (await _server.Http.PostAsJsonAsync("/queues/", Queue(id, list, "sleep 3"))).EnsureSuccessStatusCode();
        await WaitUntilAsync(async () => (await RunsAsync(id)).Count(r => r.GetProperty("mesos_state").GetString() == "TASK_RUNNING") >= 3);

        await _server.KillHardAsync();
        await Task.Delay(2000);
        await _server.StartAgainAsync();
        var runs = await WaitForEndedAsync(id, messages.Length, TimeSpan.FromSeconds(120));

        var finished = runs.Where(r => r.GetProperty("mesos_state").GetString() == "TASK_FINISHED")
            .Select(r => r.GetProperty("env").GetProperty("HIPPO_DATA").GetString()!).Order().ToList();
        Assert.Equal(messages.Order(), finished);
        await WaitUntilAsync(async () => await Db.ListLengthAsync($"longshore:processing:{id}") == 0 && await Db.ListLengthAsync(list) == 0);
    }

    [Fact]
    public async Task AFullQueue_StopsPulling_TheBacklogStaysInRedis()
    {
        var id = Families.New("redisfull");
        var list = "list-" + id;
        await Db.ListRightPushAsync(list, Enumerable.Range(1, 10).Select(i => (RedisValue)("m" + i)).ToArray());
        var definition = Queue(id, list, "sleep 30", batchSize: 2);
        ((Dictionary<string, object>)definition["queue"])["max_concurrent"] = 4;
        (await _server.Http.PostAsJsonAsync("/queues/", definition)).EnsureSuccessStatusCode();

        await WaitUntilAsync(async () => (await RunsAsync(id)).Count == 2);
        await Task.Delay(3000);

        // 4 messages in flight = 2 tasks of 2; the other 6 wait in Redis, not in Longshore's store.
        Assert.Equal(2, (await RunsAsync(id)).Count);
        Assert.Equal(6, await Db.ListLengthAsync(list));
        await _server.Http.GetAsync($"/queues/{id}/disable/");
        foreach (var run in await RunsAsync(id))
            await _server.Http.GetAsync($"/tasks/{run.GetProperty("mesos_id").GetString()}/kill/");
    }

    [Fact]
    public async Task Password_IsNeverShown_IsEncryptedAtRest_AndAnUpdateSendingStarsKeepsIt()
    {
        var id = Families.New("redissecret");
        var secret = "pw-" + Guid.NewGuid().ToString("N");
        var definition = Queue(id, "list-" + id, "true", status: "DISABLED");
        ((Dictionary<string, string>)((Dictionary<string, object>)definition["queue"])["redis"])["password"] = secret;
        (await _server.Http.PostAsJsonAsync("/queues/", definition)).EnsureSuccessStatusCode();

        var shown = await _server.Http.GetStringAsync($"/queues/{id}/");
        var node = System.Text.Json.Nodes.JsonNode.Parse(shown)!;
        Assert.Equal("***", node["queue"]!["redis"]!["password"]!.GetValue<string>());
        node["queue"]!["batch_size"] = 4;
        (await _server.Http.PutAsync($"/queues/{id}/", new StringContent(node.ToJsonString(), System.Text.Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();

        Assert.DoesNotContain(secret, await _server.Http.GetStringAsync("/queues/"), StringComparison.Ordinal);
        Assert.DoesNotContain(secret, _server.Output, StringComparison.Ordinal);
        await using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_server.DataDir, "longshore.db")};Mode=ReadOnly");
        await db.OpenAsync();
        await using var query = new Microsoft.Data.Sqlite.SqliteCommand("SELECT block FROM queues WHERE id = $id", db);
        query.Parameters.AddWithValue("$id", id);
        var stored = JsonDocument.Parse((string)(await query.ExecuteScalarAsync())!).RootElement;
        // Kept through the *** update, and encrypted at rest: the database file never holds it in the clear.
        var sealedValue = stored.GetProperty("redis").GetProperty("password").GetString()!;
        Assert.StartsWith("enc:v1:", sealedValue, StringComparison.Ordinal);
        var key = Convert.FromBase64String(await File.ReadAllTextAsync(Path.Combine(_server.DataDir, "secrets.key")));
        Assert.Equal(secret, new Longshore.Core.Queues.QueueSecrets(key, []).Decrypt(sealedValue));
        foreach (var file in Directory.GetFiles(_server.DataDir, "longshore.db*"))
            Assert.DoesNotContain(secret, System.Text.Encoding.Latin1.GetString(await File.ReadAllBytesAsync(file)), StringComparison.Ordinal);
        Assert.Equal(4, stored.GetProperty("batch_size").GetInt32());
    }

    private Task<List<JsonElement>> RunsAsync(string id) => _server.RunsAsync(id);

    private async Task<List<JsonElement>> WaitForEndedAsync(string id, int count, TimeSpan? timeout = null)
    {
        List<JsonElement> runs = [];
        await WaitUntilAsync(async () =>
        {
            runs = await RunsAsync(id);
            return runs.Count(r => TestStates.IsTerminal(r.GetProperty("mesos_state").GetString()!)) >= count;
        }, timeout ?? TimeSpan.FromSeconds(60));
        return runs.Where(r => TestStates.IsTerminal(r.GetProperty("mesos_state").GetString()!)).ToList();
    }

    private Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? timeout = null) =>
        Eventually.WaitUntilAsync(condition, timeout ?? TimeSpan.FromSeconds(30), () => _server.Output);
}
