using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Longshore.Backends.Docker;
using Longshore.Integration.Tests.Infrastructure;
using static Longshore.Integration.Tests.Infrastructure.Jobs;

namespace Longshore.Integration.Tests;

/// <summary>Replicated jobs kept alive on the real engine: counts, replacement, crash loops, scaling, rollover, health.</summary>
public sealed class JobsTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private readonly LongshoreServer _server = fixture.Server;

    [Fact]
    public async Task TwoGroups_ReachFiveContainers_KilledOneIsReplaced_DeleteLeavesNothing()
    {
        var id = Families.New("job");
        await _server.CreateAsync(Job(id, Group("web", 3), Group("worker", 2)));
        await WaitForRunningAsync(id, "web", 3);
        await WaitForRunningAsync(id, "worker", 2);
        await WaitForJobStateAsync(id, "RUNNING");

        var victim = (await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{id}-web-test", runningOnly: true))[0];
        using (var client = TestEngine.CreateClient())
            await client.Containers.KillContainerAsync(victim.ID, new Docker.DotNet.Models.ContainerKillParameters { Signal = "KILL" });
        var replacedWithin = Stopwatch.StartNew();
        await WaitUntilAsync(async () => (await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{id}-web-test", runningOnly: true))
            .Count(c => c.ID != victim.ID) == 3, TimeSpan.FromSeconds(30));
        Assert.InRange(replacedWithin.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(30));

        using (var deleted = await _server.Http.DeleteAsync($"/job/{id}"))
            Assert.Equal("STOPPED", JsonDocument.Parse(await deleted.Content.ReadAsStringAsync()).RootElement.GetProperty("job_state").GetString());
        await WaitUntilAsync(async () => await AllContainersAsync(id, "web") + await AllContainersAsync(id, "worker") == 0, TimeSpan.FromSeconds(30));
        var quiet = Stopwatch.StartNew();
        while (quiet.Elapsed < TimeSpan.FromSeconds(60))
        {
            Assert.Equal(0, await AllContainersAsync(id, "web") + await AllContainersAsync(id, "worker"));
            await Task.Delay(1000);
        }

        Assert.Equal("STOPPED", (await _server.GetJobAsync(id)).GetProperty("job_state").GetString());
    }

    [Fact]
    public async Task Scale3To6To1_LeavesExactlyTheAskedCount()
    {
        var id = Families.New("scale");
        await _server.CreateAsync(Job(id, Group("app", 3)));
        await WaitForRunningAsync(id, "app", 3);

        foreach (var count in (int[])[6, 1])
        {
            using var response = await _server.Http.PutAsJsonAsync($"/job/{id}", Job(id, Group("app", count)));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await WaitForRunningAsync(id, "app", count);
            await WaitUntilAsync(async () => await AllContainersAsync(id, "app") == count, TimeSpan.FromSeconds(30));
            await Task.Delay(2000);
            Assert.Equal(count, await RunningAsync(id, "app"));
            var job = await _server.GetJobAsync(id);
            Assert.Equal(1, job.GetProperty("generation").GetInt32());
            Assert.Equal(count, job.GetProperty("groups")[0].GetProperty("running").GetInt32());
        }

        await _server.Http.DeleteAsync($"/job/{id}");
    }

    [Fact]
    public async Task ReplicaExitingAtOnce_ShowsGrowingBackoffAndCrashLoop()
    {
        var id = Families.New("crash");
        await _server.CreateAsync(Job(id, Group("bad", 1, "exit 7")));

        JsonElement job = default;
        await WaitUntilAsync(async () =>
        {
            job = await _server.GetJobAsync(id);
            // Read together: between an end and its replacement's insert (at once, but a moment later on a loaded
            // machine) the group has no active replica to be on its third attempt.
            var shown = job.GetProperty("groups")[0];
            return shown.GetProperty("last_exit_codes").GetArrayLength() >= 5 && shown.GetProperty("crash_loop").GetBoolean();
        }, TimeSpan.FromSeconds(180));
        var group = job.GetProperty("groups")[0];
        Assert.True(group.GetProperty("crash_loop").GetBoolean());
        Assert.All(group.GetProperty("last_exit_codes").EnumerateArray(), code => Assert.Equal(7, code.GetInt32()));
        Assert.Equal("PENDING", job.GetProperty("job_state").GetString());
        await _server.Http.DeleteAsync($"/job/{id}");

        // Each replacement's backoff as the reconciler decided and logged it (to 0.1 s): when the run became due after an
        // end, not when a loaded engine got round to it. Replacing a quick crash of attempt a - 1, attempt a waits
        // base x 2^(a - 2) (0.5 s base, 8 s cap) with equal jitter: between half of that and all of it.
        var runs = JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/?id={id}-bad-test&limit=50")).RootElement
            .EnumerateArray().ToDictionary(run => run.GetProperty("mesos_id").GetString()!);
        var decided = Regex.Matches(_server.Output, $@"Job {Regex.Escape(id)}: replica (\S+) added \(attempt (\d+), starts in ([\d.]+) s, replaces \S+\)")
            .Select(m => (MesosId: m.Groups[1].Value, Attempt: int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
                Delay: TimeSpan.FromSeconds(double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture))))
            .Where(replica => replica.Attempt > 1)
            .ToList();
        Assert.True(decided.Count >= 4, $"only {decided.Count} replacements logged");
        Assert.Equal(Enumerable.Range(2, decided.Count), decided.Select(replica => replica.Attempt));
        var rounding = TimeSpan.FromSeconds(0.05);
        foreach (var (mesosId, attempt, delay) in decided)
        {
            var nominal = TimeSpan.FromSeconds(Math.Min(8, 0.5 * Math.Pow(2, attempt - 2)));
            Assert.True(delay >= nominal / 2 - rounding && delay <= nominal + rounding, $"attempt {attempt}: backoff {delay}, nominal {nominal}");
            // And kept: the replacement was staged no earlier than it was due.
            var run = runs[mesosId];
            Assert.Equal(attempt, run.GetProperty("attempt").GetInt32());
            if (run.GetProperty("staged_at").ValueKind == JsonValueKind.String)
            {
                var waited = run.GetProperty("staged_at").GetDateTimeOffset() - run.GetProperty("created_at").GetDateTimeOffset();
                Assert.True(waited >= delay - rounding, $"attempt {attempt} staged {waited} after it was recorded, backoff {delay}");
            }
        }
    }

    [Fact]
    public async Task RollingReplacement_NeverFewerThanTwoRunning_EndsWithThreeNew()
    {
        var id = Families.New("roll");
        await _server.CreateAsync(Job(id, Group("svc", 3, "sleep 600")));
        await WaitForRunningAsync(id, "svc", 3);
        await WaitForJobStateAsync(id, "RUNNING");
        var oldIds = (await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{id}-svc-test")).Select(c => c.ID).ToHashSet();

        using (var response = await _server.Http.PutAsJsonAsync($"/job/{id}", Job(id, Group("svc", 3, "sleep 601"))))
            Assert.Equal(2, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("generation").GetInt32());

        var fewest = int.MaxValue;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(120))
        {
            var running = await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{id}-svc-test", runningOnly: true);
            fewest = Math.Min(fewest, running.Count);
            if (running.Count == 3 && running.All(c => !oldIds.Contains(c.ID)) && await AllContainersAsync(id, "svc") == 3)
                break;
            await Task.Delay(50);
        }

        var final = await TestEngine.ListByLabelAsync(DockerBackend.FamilyLabel, $"{id}-svc-test", runningOnly: true);
        Assert.Equal(3, final.Count);
        Assert.DoesNotContain(final, c => oldIds.Contains(c.ID));
        Assert.True(fewest >= 2, $"only {fewest} replicas were running at one point");
        var group = (await _server.GetJobAsync(id)).GetProperty("groups")[0];
        Assert.All(group.GetProperty("replica_runs").EnumerateArray(), replica => Assert.Equal(2, replica.GetProperty("generation").GetInt32()));
        Assert.All(group.GetProperty("replica_runs").EnumerateArray(), replica => Assert.Equal("sleep 601", replica.GetProperty("run").GetProperty("cmd").GetString()));
        await _server.Http.DeleteAsync($"/job/{id}");
    }

    [Fact]
    public async Task FailingCommandHealthCheck_KillsAndReplacesTheReplica()
    {
        var id = Families.New("health");
        var check = new Dictionary<string, object> { ["type"] = "command", ["command"] = new[] { "test", "-f", "/tmp/healthy" }, ["interval_seconds"] = 1, ["failures"] = 2, ["timeout_seconds"] = 5 };
        await _server.CreateAsync(Job(id, Group("hc", 1, "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 600", check)));

        var first = await WaitForReplicaAsync(id);
        var ended = await _server.WaitForEndAsync(first, TimeSpan.FromSeconds(60));

        Assert.Equal("TASK_KILLED", ended.GetProperty("mesos_state").GetString());
        Assert.Contains("health check failed 2 times in a row", ended.GetProperty("reason").GetString(), StringComparison.Ordinal);
        await WaitUntilAsync(async () => (await WaitForReplicaAsync(id)) != first, TimeSpan.FromSeconds(30));
        await _server.Http.DeleteAsync($"/job/{id}");
    }

    [Fact]
    public async Task FailingHttpHealthCheck_OnHostNetwork_KillsAndReplacesTheReplica()
    {
        var id = Families.New("httphc");
        var port = FreePort();
        var check = new Dictionary<string, object> { ["type"] = "http", ["port"] = port, ["path"] = "/index.html", ["interval_seconds"] = 1, ["failures"] = 2 };
        var group = Group("web", 1,
            $"mkdir -p /www; echo ok > /www/index.html; (sleep 4; rm /www/index.html) & exec httpd -f -p 127.0.0.1:{port} -h /www", check);
        ((Dictionary<string, object?>)group["container"]!)["network"] = "HOST";
        await _server.CreateAsync(Job(id, group));

        var first = await WaitForReplicaAsync(id);
        await Task.Delay(2500);
        var health = (await _server.GetJobAsync(id)).GetProperty("groups")[0].GetProperty("replica_runs")[0].GetProperty("health");
        Assert.True(health.GetProperty("healthy").GetBoolean(), health.ToString());
        var ended = await _server.WaitForEndAsync(first, TimeSpan.FromSeconds(60));
        await _server.Http.DeleteAsync($"/job/{id}");

        Assert.Equal("TASK_KILLED", ended.GetProperty("mesos_state").GetString());
        Assert.Contains("gave 404", ended.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Theory]
    [InlineData("""{"tasks":[]}""", "id: is required")]
    [InlineData("""{"id":"j","tasks":[]}""", "tasks: must list at least one task group")]
    [InlineData("""{"id":"j","tasks":[{"role":"r","environment":"e"}]}""", "tasks[0].container: is required")]
    [InlineData("""{"id":"j","tasks":[{"role":"r","environment":"e","container":{"image":"busybox"},"replicas":-1}]}""", "tasks[0].replicas:")]
    [InlineData("""{"id":"j","tasks":[{"role":"r","environment":"e","container":{}}]}""", "tasks[0].container.image: is required")]
    [InlineData("""{"id":"j","tasks":[{"role":"r","environment":"e","container":{"image":"busybox","volumes":[{"host_path":"/etc","container_path":"/x"}]}}]}""", "tasks[0].container.volumes[0].host_path:")]
    [InlineData("""{"id":"j","tasks":[{"role":"r","environment":"e","container":{"image":"busybox"},"resources":{"memory":1}}]}""", "tasks[0].resources.memory:")]
    [InlineData("""{"id":"j","tasks":[{"role":"r","environment":"e","container":{"image":"busybox"},"health_check":{"type":"http","port":8080}}]}""", "tasks[0].health_check.type: http checks")]
    [InlineData("""{"id":"j","tasks":[{"role":"r","environment":"e","container":{"image":"busybox"},"replicas":"3"}]}""", "tasks[0].replicas: must be a whole number")]
    [InlineData("""{"id":"j","tasks":[{"role":"r","environment":"e","container":{"image":"busybox"}},{"role":"r","environment":"e","container":{"image":"busybox"}}]}""", "tasks[1]: another task group")]
    public async Task InvalidJob_Is400NamingTheField(string body, string expected)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await _server.Http.PostAsync("/job/new", content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownJob_Is404_RunningJobCannotBeCreatedTwice()
    {
        using (var missing = await _server.Http.GetAsync("/job/no-such-job"))
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        var id = Families.New("dup");
        await _server.CreateAsync(Job(id, Group("x", 0)));
        using (var again = await _server.Http.PostAsJsonAsync("/job/new", Job(id, Group("x", 0))))
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        await _server.Http.DeleteAsync($"/job/{id}");
        using var recreated = await _server.Http.PostAsJsonAsync("/job/new", Job(id, Group("x", 0)));
        Assert.Equal(HttpStatusCode.OK, recreated.StatusCode);
        await _server.Http.DeleteAsync($"/job/{id}");
    }

    private async Task<string> WaitForReplicaAsync(string id)
    {
        string? mesosId = null;
        await WaitUntilAsync(async () =>
        {
            var replicas = (await _server.GetJobAsync(id)).GetProperty("groups")[0].GetProperty("replica_runs");
            mesosId = replicas.EnumerateArray()
                .Select(r => r.GetProperty("run"))
                .Where(run => run.GetProperty("mesos_state").GetString() == "TASK_RUNNING")
                .Select(run => run.GetProperty("mesos_id").GetString())
                .FirstOrDefault();
            return mesosId is not null;
        }, TimeSpan.FromSeconds(60));
        return mesosId!;
    }

    private async Task WaitForJobStateAsync(string id, string state) =>
        await WaitUntilAsync(async () => (await _server.GetJobAsync(id)).GetProperty("job_state").GetString() == state, TimeSpan.FromSeconds(60));

    private static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout) => Eventually.WaitUntilAsync(condition, timeout);
}
