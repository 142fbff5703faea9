using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Longshore.Integration.Tests.Infrastructure;
using Npgsql;

namespace Longshore.Integration.Tests;

/// <summary>
/// Hippo's REST surface, as a client written for Hippo uses it, against the real server and engine. Every route, body
/// and field here is taken from Hippo's own source (Hobsons/hippo: api.py, tasks.py, queues.py, data_sources/*.py and
/// the client in static/index.html), not from Longshore's: if Longshore drifts from Hippo, these fail.
/// </summary>
public sealed class HippoCompatibilityTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private readonly LongshoreServer _server = fixture.Server;

    /// <summary>data_sources/*.py: each source's namespace and the inputs it declares, with the defaults it declares.</summary>
    private static readonly Dictionary<string, string[]> HippoInputs = new()
    {
        ["cron"] = ["cronstring", "maxbacklog"],
        ["redis"] = ["host", "port", "db", "name"],
        ["s3bucket"] = ["awskey", "awssecret", "awsregion", "bucket_name", "earliest_unix_tstamp"],
        ["sqlquery"] = ["conn_string", "query", "filter_field", "filter_val"],
        ["sqs"] = ["awskey", "awssecret", "awsregion", "queuename"],
    };

    private async Task<(HttpStatusCode Status, JsonNode? Body)> SendAsync(HttpMethod method, string path, JsonNode? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await _server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    private async Task<JsonNode> OkAsync(HttpMethod method, string path, JsonNode? body = null)
    {
        var (status, answer) = await SendAsync(method, path, body);
        Assert.True(status == HttpStatusCode.OK, $"{method} {path} answered {(int)status}: {answer?.ToJsonString()}");
        return answer!;
    }

    /// <summary>A task as Hippo's README and its client (getTaskModalFields) write one.</summary>
    private static JsonObject HippoTask(string id, string cmd) => new()
    {
        ["id"] = id,
        ["container"] = new JsonObject { ["docker"] = new JsonObject { ["image"] = TestEngine.Image, ["network"] = "BRIDGE" } },
        ["mem"] = 32,
        ["cpus"] = 0.1,
        ["cmd"] = cmd,
        // tasks.py: "fix any env vars that are passed in as numbers instead of strings".
        ["env"] = new JsonObject { ["MYVARNAME"] = "MYVARVALUE", ["RETRIES"] = 3 },
        ["constraints"] = new JsonArray(new JsonArray("rack", "EQUAL", "rack1")),
    };

    /// <summary>A queue as Hippo's client (saveQueue) posts one: the task fields, and the queue's type namespace holding only the inputs filled in.</summary>
    private static JsonObject HippoQueue(string id, string type, JsonObject settings, string? status = null)
    {
        var queue = HippoTask(id, "echo $HIPPO_DATA");
        queue["queue"] = new JsonObject { ["name"] = id, ["type"] = type, [type] = settings };
        if (status is not null)
            queue["queue"]!["status"] = status;
        return queue;
    }

    private async Task<JsonArray> TasksOfAsync(string id) => (await OkAsync(HttpMethod.Get, $"/tasks/?id={id}&limit=1000")).AsArray();

    [Fact]
    public async Task QueueTypes_IteratedAsHipposClientDoes_YieldTheInputNames_WithHipposKindsAndDefaults()
    {
        var types = (await OkAsync(HttpMethod.Get, "/queuetypes/")).AsArray();

        // index.html: `for (var qtype of latest_queue_types)` … `for (var input_name in qtype.inputs)` … `details.input`, `details.label`, `details.default`.
        var byNamespace = new Dictionary<string, JsonObject>();
        foreach (var qtype in types)
        {
            Assert.False(string.IsNullOrEmpty(qtype!["label"]!.GetValue<string>()));
            var inputs = qtype["inputs"]!.AsObject();
            foreach (var (name, details) in inputs)
            {
                Assert.Contains(details!["input"]!.GetValue<string>(), (string[])["text", "number", "password"]);
                Assert.False(string.IsNullOrEmpty(details["label"]!.GetValue<string>()), name);
            }

            byNamespace[qtype["namespace"]!.GetValue<string>()] = inputs;
        }

        foreach (var (ns, names) in HippoInputs)
            Assert.Empty(names.Except(byNamespace[ns].Select(input => input.Key)));

        // The defaults Hippo declares, with their JSON kinds (numbers for number inputs).
        Assert.Equal("* * * * *", byNamespace["cron"]["cronstring"]!["default"]!.GetValue<string>());
        Assert.Equal(1, byNamespace["cron"]["maxbacklog"]!["default"]!.GetValue<int>());
        Assert.Equal("number", byNamespace["cron"]["maxbacklog"]!["input"]!.GetValue<string>());
        Assert.Equal(6379, byNamespace["redis"]["port"]!["default"]!.GetValue<int>());
        Assert.Equal(0, byNamespace["redis"]["db"]!["default"]!.GetValue<int>());
        Assert.Equal("us-east-1", byNamespace["sqs"]["awsregion"]!["default"]!.GetValue<string>());
        Assert.Equal("us-east-1", byNamespace["s3bucket"]["awsregion"]!["default"]!.GetValue<string>());
        Assert.Equal(string.Empty, byNamespace["s3bucket"]["earliest_unix_tstamp"]!["default"]!.GetValue<string>());
        Assert.Equal(string.Empty, byNamespace["sqlquery"]["filter_val"]!["default"]!.GetValue<string>());
        // Without a default an input is required (queues.py: `if p.inputs[input_name].get('default') is None: required`).
        foreach (var (ns, name) in (ValueTuple<string, string>[])[("redis", "name"), ("sqs", "queuename"), ("s3bucket", "bucket_name"), ("sqlquery", "conn_string"),
            ("sqlquery", "query"), ("sqlquery", "filter_field")])
            Assert.Null(byNamespace[ns][name]!["default"]);
    }

    [Fact]
    public async Task EachQueueType_CreatedWithOnlyItsNonDefaultInputs_AsHipposFormPostsThem()
    {
        var id = Families.New("hq");
        // Numbers arrive from a form as numbers (parseInt) or, from other clients, as strings: both are accepted.
        // sqs and s3bucket name AWS itself (no endpoint in Hippo), so they are created disabled: never polled here.
        var queues = new (string Type, JsonObject Settings, string? Status)[]
        {
            ("cron", [], "DISABLED"),
            ("redis", new JsonObject { ["host"] = "127.0.0.1", ["name"] = id + "-list", ["port"] = "6379", ["db"] = 0 }, null),
            ("sqs", new JsonObject { ["awskey"] = "AKIAEXAMPLE", ["awssecret"] = "not-a-secret", ["queuename"] = "jobs" }, "DISABLED"),
            ("s3bucket", new JsonObject { ["awskey"] = "AKIAEXAMPLE", ["awssecret"] = "not-a-secret", ["bucket_name"] = "my-bucket/in/coming" }, "DISABLED"),
            ("sqlquery", new JsonObject { ["conn_string"] = TestServices.PostgresUrl, ["query"] = "SELECT 1 AS n WHERE false", ["filter_field"] = "n" }, "DISABLED"),
        };

        try
        {
            foreach (var (type, settings, status) in queues)
            {
                var queueId = $"{id}-{type}";
                var created = await OkAsync(HttpMethod.Post, "/queues/", HippoQueue(queueId, type, settings, status));
                Assert.Equal(queueId, created["id"]!.GetValue<string>());
                var shown = (await OkAsync(HttpMethod.Get, "/queues/")).AsArray().Single(q => q!["id"]!.GetValue<string>() == queueId)!;
                Assert.Equal(type, shown["queue"]!["type"]!.GetValue<string>());
                Assert.Equal(status ?? "ENABLED", shown["queue"]!["status"]!.GetValue<string>());
            }
        }
        finally
        {
            foreach (var (type, _, _) in queues)
                await SendAsync(HttpMethod.Delete, $"/queues/{id}-{type}/");
        }
    }

    [Fact]
    public async Task QueueMissingAnInputWithoutDefault_Is400NamingIt()
    {
        var (status, body) = await SendAsync(HttpMethod.Post, "/queues/", HippoQueue(Families.New("hq"), "redis", new JsonObject { ["host"] = "127.0.0.1" }));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("queue.redis.name", body!["error"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SqlQuery_WithHipposDefaults_TakesRowsFromTheFirst_EachAJsonListOfItsColumns_AndTheQueueShowsItsTimestamps()
    {
        var id = Families.New("hsql");
        var table = "hippo_" + Guid.NewGuid().ToString("N")[..10];
        await using var db = new NpgsqlConnection(TestServices.Postgres);
        await db.OpenAsync();
        await using (var create = new NpgsqlCommand($"CREATE TABLE {table} (id integer, name text); INSERT INTO {table} VALUES (-1, 'minus one'), (0, 'zero'), (1, 'one');", db))
            await create.ExecuteNonQueryAsync();
        try
        {
            var queue = HippoQueue(id, "sqlquery", new JsonObject { ["conn_string"] = TestServices.PostgresUrl, ["query"] = $"SELECT id, name FROM {table}", ["filter_field"] = "id" });
            queue["queue"]!["frequency_seconds"] = 1;
            await OkAsync(HttpMethod.Post, "/queues/", queue);

            // sql.py: without filter_val every row is taken, and HIPPO_DATA is json.dumps(row): the row's values in column order.
            await Eventually.WaitUntilAsync(async () => (await TasksOfAsync(id)).Count == 3, TimeSpan.FromSeconds(30), () => _server.Output);
            var payloads = (await TasksOfAsync(id)).Select(t => JsonNode.Parse(t!["env"]!["HIPPO_DATA"]!.GetValue<string>())!.AsArray())
                .Select(row => (row[0]!.GetValue<int>(), row[1]!.GetValue<string>())).Order().ToList();
            Assert.Equal([(-1, "minus one"), (0, "zero"), (1, "one")], payloads);

            // queues.py / hippo_base.py: last_run_tstamp (each poll) and last_task_queued_tstamp (each poll that made tasks), whole Unix seconds.
            var now = TimeProvider.System.GetUtcNow().ToUnixTimeSeconds();
            var shown = await OkAsync(HttpMethod.Get, $"/queues/{id}/");
            Assert.Equal("ENABLED", shown["queue"]!["status"]!.GetValue<string>());
            Assert.InRange(shown["queue"]!["last_run_tstamp"]!.GetValue<long>(), now - 30, now + 1);
            Assert.InRange(shown["queue"]!["last_task_queued_tstamp"]!.GetValue<long>(), now - 30, now + 1);
        }
        finally
        {
            await SendAsync(HttpMethod.Delete, $"/queues/{id}/");
            await using var drop = new NpgsqlCommand($"DROP TABLE {table}", db);
            await drop.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task Cron_HippoData_IsTheFireTimeInUnixSeconds()
    {
        var id = Families.New("hcron");
        // cron.py: self.create_tasks([str(cur_tstamp)]). Six fields (seconds first) so the test need not wait a minute.
        await OkAsync(HttpMethod.Post, "/queues/", HippoQueue(id, "cron", new JsonObject { ["cronstring"] = "*/2 * * * * *" }));
        try
        {
            await Eventually.WaitUntilAsync(async () => (await TasksOfAsync(id)).Count > 0, TimeSpan.FromSeconds(30), () => _server.Output);
        }
        finally
        {
            await OkAsync(HttpMethod.Delete, $"/queues/{id}/");
        }

        var task = (await TasksOfAsync(id))[^1]!;
        var fired = long.Parse(task["env"]!["HIPPO_DATA"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(0, fired % 2);
        Assert.InRange(task["status_tstamp"]!.GetValue<double>() - fired, -1, 30);
    }

    [Fact]
    public async Task Task_AsHipposReadmeDefinesIt_IsListedWithEveryFieldAClientReads_AndStatusTstampMovesWithEachStateChange()
    {
        var id = Families.New("htask");
        var created = await OkAsync(HttpMethod.Post, "/tasks/", HippoTask(id, "echo hippo; sleep 2"));
        var mesosId = created["mesos_id"]!.GetValue<string>();
        Assert.StartsWith(id + ".", mesosId, StringComparison.Ordinal);

        // Every state the client sees, with the status_tstamp it sees beside it.
        var seen = new List<(string State, double Tstamp)>();
        while (seen.Count == 0 || !TestStates.IsTerminal(seen[^1].State))
        {
            var run = await OkAsync(HttpMethod.Get, $"/tasks/{mesosId}/");
            var observed = (run["mesos_state"]!.GetValue<string>(), run["status_tstamp"]!.GetValue<double>());
            if (seen.Count == 0 || seen[^1] != observed)
            {
                // A new stamp only with a new state, and always a later one.
                if (seen.Count > 0)
                    Assert.True(observed.Item1 != seen[^1].State && observed.Item2 > seen[^1].Tstamp, $"{seen[^1]} then {observed}");
                seen.Add(observed);
            }

            await Task.Delay(50);
        }

        Assert.Equal("TASK_FINISHED", seen[^1].State);
        Assert.Contains(seen, s => s.State == "TASK_RUNNING");
        var now = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0;
        Assert.InRange(seen[0].Tstamp, now - 120, seen[^1].Tstamp);

        // index.html reads these from GET /tasks/; api.py answers the definition with Hippo's defaults filled in.
        var listed = (await TasksOfAsync(id)).Single(t => t!["mesos_id"]!.GetValue<string>() == mesosId)!;
        Assert.Equal(id, listed["id"]!.GetValue<string>());
        Assert.Equal("TASK_FINISHED", listed["mesos_state"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(listed["mesos_agent"]!.GetValue<string>()));
        Assert.Equal(seen[^1].Tstamp, listed["status_tstamp"]!.GetValue<double>());
        Assert.Equal(TestEngine.Image, listed["container"]!["docker"]!["image"]!.GetValue<string>());
        Assert.Equal("echo hippo; sleep 2", listed["cmd"]!.GetValue<string>());
        Assert.Equal((0.1, 32.0), (listed["cpus"]!.GetValue<double>(), listed["mem"]!.GetValue<double>()));
        Assert.Equal(("MYVARVALUE", "3"), (listed["env"]!["MYVARNAME"]!.GetValue<string>(), listed["env"]!["RETRIES"]!.GetValue<string>()));
        Assert.Equal("rack1", listed["constraints"]![0]![2]!.GetValue<string>());
        Assert.Equal((0, 2, 10), (listed["task_retries"]!.GetValue<int>(), listed["system_retries"]!.GetValue<int>(), listed["max_concurrent"]!.GetValue<int>()));
    }

    [Fact]
    public async Task Rerun_PostingATaskBackAsListed_MakesANewRunOfTheSameTask()
    {
        var id = Families.New("hrerun");
        var first = (await OkAsync(HttpMethod.Post, "/tasks/", HippoTask(id, "echo again")))["mesos_id"]!.GetValue<string>();
        var listed = (await TasksOfAsync(id)).Single()!.AsObject();

        // index.html rerunTask: a copy without mesos_id, mesos_state and status_tstamp; other clients post it back whole.
        var hippoCopy = listed.DeepClone().AsObject();
        hippoCopy.Remove("mesos_id");
        hippoCopy.Remove("mesos_state");
        hippoCopy.Remove("status_tstamp");
        var again = new[]
        {
            (await OkAsync(HttpMethod.Post, "/tasks/", hippoCopy))["mesos_id"]!.GetValue<string>(),
            (await OkAsync(HttpMethod.Post, "/tasks/", listed.DeepClone()))["mesos_id"]!.GetValue<string>(),
        };

        Assert.Equal(3, again.Append(first).Distinct().Count());
        foreach (var mesosId in again)
        {
            var run = await _server.WaitForEndAsync(mesosId);
            Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString());
            Assert.Equal(("echo again", "3"), (run.GetProperty("cmd").GetString(), run.GetProperty("env").GetProperty("RETRIES").GetString()));
        }
    }

    [Fact]
    public async Task KillAndDelete_AnswerWithHipposBodies()
    {
        var id = Families.New("hkill");
        var viaGet = (await OkAsync(HttpMethod.Post, "/tasks/", HippoTask(id, "sleep 600")))["mesos_id"]!.GetValue<string>();
        var viaPost = (await OkAsync(HttpMethod.Post, "/tasks/", HippoTask(id, "sleep 601")))["mesos_id"]!.GetValue<string>();
        await _server.WaitForStateAsync(viaGet, state => state == "TASK_RUNNING");

        // api.py: /tasks/<id>/kill/ (GET or POST) answers {"killed": id}; DELETE /tasks/<id>/ answers {"deleted": id}.
        Assert.Equal(viaGet, (await OkAsync(HttpMethod.Get, $"/tasks/{viaGet}/kill/"))["killed"]!.GetValue<string>());
        Assert.Equal(viaPost, (await OkAsync(HttpMethod.Post, $"/tasks/{viaPost}/kill/"))["killed"]!.GetValue<string>());
        Assert.Equal("TASK_KILLED", (await _server.WaitForEndAsync(viaGet)).GetProperty("mesos_state").GetString());
        await _server.WaitForEndAsync(viaPost);
        Assert.Equal(viaGet, (await OkAsync(HttpMethod.Delete, $"/tasks/{viaGet}/"))["deleted"]!.GetValue<string>());

        // api.py: an unknown id is 404 {"error": …} on every task route.
        foreach (var (method, path) in new[] { (HttpMethod.Get, $"/tasks/{viaGet}/"), (HttpMethod.Delete, $"/tasks/{viaGet}/"), (HttpMethod.Get, $"/tasks/{viaGet}/kill/") })
        {
            var (status, body) = await SendAsync(method, path);
            Assert.Equal(HttpStatusCode.NotFound, status);
            Assert.False(string.IsNullOrEmpty(body!["error"]!.GetValue<string>()));
        }
    }

    [Fact]
    public async Task QueueRoutes_AnswerWithHipposBodies()
    {
        var id = Families.New("hqr");
        var definition = HippoQueue(id, "cron", new JsonObject { ["cronstring"] = "0 0 1 1 *" });

        // api.py queues(): POST and PUT both create or replace, answering {"id": …}.
        Assert.Equal(id, (await OkAsync(HttpMethod.Post, "/queues/", definition))["id"]!.GetValue<string>());
        Assert.Equal(id, (await OkAsync(HttpMethod.Post, "/queues/", definition))["id"]!.GetValue<string>());
        definition["queue"]!["batch_size"] = 3;
        Assert.Equal(id, (await OkAsync(HttpMethod.Put, "/queues/", definition))["id"]!.GetValue<string>());
        var listed = (await OkAsync(HttpMethod.Get, "/queues/")).AsArray().Single(q => q!["id"]!.GetValue<string>() == id)!;
        Assert.Equal((3, "ENABLED", id), (listed["queue"]!["batch_size"]!.GetValue<int>(), listed["queue"]!["status"]!.GetValue<string>(), listed["queue"]!["name"]!.GetValue<string>()));

        // single_queue_enable_toggle(): {"disabled": id} / {"enabled": id}.
        Assert.Equal(id, (await OkAsync(HttpMethod.Get, $"/queues/{id}/disable/"))["disabled"]!.GetValue<string>());
        Assert.Equal("DISABLED", (await OkAsync(HttpMethod.Get, $"/queues/{id}/"))["queue"]!["status"]!.GetValue<string>());
        Assert.Equal(id, (await OkAsync(HttpMethod.Get, $"/queues/{id}/enable/"))["enabled"]!.GetValue<string>());

        // single_queue(): POST or PUT of the queue as listed answers the queue.
        var edited = (await OkAsync(HttpMethod.Get, $"/queues/{id}/")).AsObject();
        edited["cmd"] = "echo edited $HIPPO_DATA";
        var saved = await OkAsync(HttpMethod.Post, $"/queues/{id}/", edited);
        Assert.Equal(("echo edited $HIPPO_DATA", "ENABLED"), (saved["cmd"]!.GetValue<string>(), saved["queue"]!["status"]!.GetValue<string>()));

        Assert.Equal(id, (await OkAsync(HttpMethod.Delete, $"/queues/{id}/"))["deleted"]!.GetValue<string>());
        foreach (var (method, path) in new[] { (HttpMethod.Get, $"/queues/{id}/"), (HttpMethod.Post, $"/queues/{id}/"), (HttpMethod.Delete, $"/queues/{id}/"),
            (HttpMethod.Get, $"/queues/{id}/enable/"), (HttpMethod.Get, $"/queues/{id}/disable/") })
        {
            var (status, body) = await SendAsync(method, path, method == HttpMethod.Post ? definition : null);
            Assert.Equal(HttpStatusCode.NotFound, status);
            Assert.False(string.IsNullOrEmpty(body!["error"]!.GetValue<string>()));
        }
    }

    [Fact]
    public async Task InvalidTask_Is400WithAnError()
    {
        var task = HippoTask(Families.New("hbad"), "true");
        task["mem"] = 1;
        task["container"]!["docker"]!["image"] = string.Empty;

        var (status, body) = await SendAsync(HttpMethod.Post, "/tasks/", task);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = body!["error"]!.GetValue<string>();
        Assert.Contains("mem", error, StringComparison.Ordinal);
        Assert.Contains("container.docker.image", error, StringComparison.Ordinal);
    }
}
