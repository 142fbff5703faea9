using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>
/// The engine compliance suite: one-off tasks run for real on the engine (outcomes, retries, limits, caps, kills,
/// output), written once and run by every engine (the local engine on each store, and a real Kubernetes cluster).
/// </summary>
public abstract class TaskLifecycleTests(LongshoreServer server, IEngineProbe engine)
{
    private readonly LongshoreServer _server = server;
    private readonly IEngineProbe _engine = engine;

    [EngineFact]
    public async Task EchoHello_FinishesWithExitCodeZero_AndOutputReadable()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("hello"), "echo hello; echo oops >&2"));

        var run = await _server.WaitForEndAsync(id);

        Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString());
        Assert.Equal(0, run.GetProperty("exit_code").GetInt32());
        var logs = JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/{id}/logs/")).RootElement;
        if (_engine.SeparatesStderr)
        {
            Assert.Equal("hello\n", logs.GetProperty("stdout").GetString());
            Assert.Equal("oops\n", logs.GetProperty("stderr").GetString());
        }
        else
        {
            // One log of both streams, in the order the kubelet read them from their two pipes.
            Assert.Equal(["hello", "oops"], logs.GetProperty("stdout").GetString()!.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order());
        }

        // The output is kept by Longshore; the container itself is removed once it is.
        await WaitUntilAsync(async () => await _engine.CountRunAsync(id) == 0);
    }

    [EngineFact]
    public async Task Exit3WithTwoTaskRetries_RunsExactlyThreeTimes_ThenStaysFailed()
    {
        var family = Families.New("exit3");
        var first = await _server.PostTaskAsync(Tasks.Definition(family, "exit 3", taskRetries: 2, systemRetries: 2));

        var chain = await _server.WaitForChainAsync(first);

        Assert.Equal(3, chain.Count);
        Assert.All(chain, run => Assert.Equal("TASK_FAILED", run.GetProperty("mesos_state").GetString()));
        Assert.All(chain, run => Assert.Equal(3, run.GetProperty("exit_code").GetInt32()));
        Assert.Equal([1, 2, 3], chain.Select(run => run.GetProperty("attempt").GetInt32()));
        Assert.Equal([2, 1, 0], chain.Select(run => run.GetProperty("task_retries_remaining").GetInt32()));
        Assert.Equal(3, chain.Select(run => run.GetProperty("container_id").GetString()).Distinct().Count());
        Assert.All(chain, run => Assert.Equal(2, run.GetProperty("system_retries_remaining").GetInt32()));
        await Task.Delay(1500);
        var all = JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/?id={family}")).RootElement;
        Assert.Equal(3, all.GetArrayLength());
    }

    [EngineFact]
    public async Task ContainerRemovedBehindOurBack_IsLost_AndSpendsSystemRetryNotTaskRetry()
    {
        var family = Families.New("vanish");
        // The first attempt waits to be removed; the retry finishes at once.
        var first = await _server.PostTaskAsync(Tasks.Definition(family,
            "if [ \"$LONGSHORE_ATTEMPT\" = 1 ]; then sleep 120; fi; echo second", taskRetries: 1, systemRetries: 1));
        await _server.WaitForStateAsync(first, state => state == "TASK_RUNNING");

        await _engine.RemoveBehindOurBackAsync(first);

        var chain = await _server.WaitForChainAsync(first);
        Assert.Equal(2, chain.Count);
        Assert.Equal("TASK_LOST", chain[0].GetProperty("mesos_state").GetString());
        Assert.Contains("vanished", chain[0].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal("TASK_FINISHED", chain[1].GetProperty("mesos_state").GetString());
        Assert.Equal(0, chain[1].GetProperty("system_retries_remaining").GetInt32());
        Assert.Equal(1, chain[1].GetProperty("task_retries_remaining").GetInt32());
    }

    [EngineFact]
    public async Task MemoryHog_EndsFailedOutOfMemory()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("oom"), "head -c 200000000 /dev/zero | tail", mem: 16));

        var run = await _server.WaitForEndAsync(id);

        Assert.Equal("TASK_FAILED", run.GetProperty("mesos_state").GetString());
        Assert.Contains("out of memory", run.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    [EngineFact]
    public async Task RunningContainer_HasTheMemoryCpuNetworkAndLabelsAsked()
    {
        var family = Families.New("limits");
        var id = await _server.PostTaskAsync(Tasks.Definition(family, "sleep 60", mem: 48, cpus: 0.25, network: "HOST"));
        await _server.WaitForStateAsync(id, state => state == "TASK_RUNNING");

        var view = await _engine.InspectAsync(id);
        await _server.Http.PostAsync($"/tasks/{id}/kill/", null);

        Assert.Equal(48L * 1024 * 1024, view.MemoryBytes);
        Assert.Equal(0.25, view.Cpus);
        Assert.True(view.HostNetwork);
        Assert.Equal(id, view.RunLabel);
        Assert.Equal(family, view.FamilyLabel);
        Assert.Contains($"MESOS_TASK_ID={id}", view.Env);
    }

    [EngineFact]
    public async Task MaxConcurrentTwo_SixTasks_NeverMoreThanTwoRunning()
    {
        var family = Families.New("cap");
        var ids = new List<string>();
        for (var i = 0; i < 6; i++)
            ids.Add(await _server.PostTaskAsync(Tasks.Definition(family, "sleep 2", maxConcurrent: 2)));

        // The engine's own view, sampled: never more than two running containers. On a loaded engine a listing can take
        // seconds, so the samples may miss every container; the recorded run times below cover the whole span.
        var most = 0;
        var sampler = Stopwatch.StartNew();
        while (sampler.Elapsed < TimeSpan.FromSeconds(90))
        {
            most = Math.Max(most, await _engine.CountFamilyAsync(family, runningOnly: true));
            var states = await Task.WhenAll(ids.Select(id => _server.GetRunAsync(id)));
            if (states.All(run => TestStates.IsTerminal(run.GetProperty("mesos_state").GetString()!)))
                break;
            await Task.Delay(50);
        }

        var ends = await Task.WhenAll(ids.Select(id => _server.WaitForEndAsync(id)));
        Assert.All(ends, run => Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString()));
        Assert.InRange(most, 0, 2);

        // Longshore's record of when each run was running: a run's recorded end is never later than the moment its end was
        // seen, and the next run is admitted only after that, so at most two recorded spans may overlap at any instant.
        var spans = ends.Select(run => (Start: run.GetProperty("started_at").GetDateTimeOffset(), End: run.GetProperty("finished_at").GetDateTimeOffset())).ToList();
        var overlapping = spans.Max(span => spans.Count(other => other.Start <= span.Start && span.Start < other.End));
        Assert.InRange(overlapping, 1, 2);
    }

    [EngineFact]
    public async Task KillOfSleep600_EndsKilledWithinGrace_AndIsNotRetried()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("kill"), "sleep 600", taskRetries: 3, systemRetries: 3));
        await _server.WaitForStateAsync(id, state => state == "TASK_RUNNING");

        var watch = Stopwatch.StartNew();
        using var response = await _server.Http.PostAsync($"/tasks/{id}/kill/", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var run = await _server.WaitForEndAsync(id, TimeSpan.FromSeconds(30));

        Assert.Equal("TASK_KILLED", run.GetProperty("mesos_state").GetString());
        // Grace is 2 s on this server: SIGTERM (ignored by sh as PID 1), then SIGKILL. Well short of the 600 s sleep, with room
        // for an engine slowed by the rest of the suite (the stop itself took 12 s there once).
        Assert.InRange(watch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(25));
        await Task.Delay(1500);
        Assert.Equal(JsonValueKind.Null, (await _server.GetRunAsync(id)).GetProperty("retried_as").ValueKind);
    }

    [EngineFact]
    public async Task KillBeforeLaunch_EndsKilledWithoutContainer()
    {
        var family = Families.New("killwait");
        var blocker = await _server.PostTaskAsync(Tasks.Definition(family, "sleep 30", maxConcurrent: 1));
        await _server.WaitForStateAsync(blocker, state => state == "TASK_RUNNING");
        var waiting = await _server.PostTaskAsync(Tasks.Definition(family, "echo never", maxConcurrent: 1));
        Assert.Equal("WAITING_ON_OFFERS", (await _server.GetRunAsync(waiting)).GetProperty("mesos_state").GetString());

        await _server.Http.GetAsync($"/tasks/{waiting}/kill/");
        await _server.Http.GetAsync($"/tasks/{blocker}/kill/");

        var run = await _server.WaitForEndAsync(waiting);
        Assert.Equal("TASK_KILLED", run.GetProperty("mesos_state").GetString());
        Assert.Equal(0, await _engine.CountRunAsync(waiting));
    }

    [EngineFact]
    public async Task FollowLogs_StreamsLinesUntilTheRunEnds()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("follow"), "for i in 1 2 3; do echo line$i; sleep 0.5; done"));
        await _server.WaitForStateAsync(id, state => state is "TASK_RUNNING" || TestStates.IsTerminal(state));

        var text = await _server.Http.GetStringAsync($"/tasks/{id}/logs/?follow=true");

        Assert.Equal("line1\nline2\nline3\n", text);
    }

    [EngineFact]
    public async Task FollowLogs_OfARunStillWaiting_WaitsForItsStart_ThenStreamsItsOutput()
    {
        // max_concurrent 1: the second run waits behind the first, so its follow starts before it has any container.
        var family = Families.New("followwait");
        await _server.PostTaskAsync(Tasks.Definition(family, "sleep 3", maxConcurrent: 1));
        var second = await _server.PostTaskAsync(Tasks.Definition(family, "echo second-ran", maxConcurrent: 1));
        Assert.Contains((await _server.GetRunAsync(second)).GetProperty("mesos_state").GetString(), (string[])["WAITING_ON_OFFERS", "TASK_STAGING", "TASK_STARTING"]);

        var text = await _server.Http.GetStringAsync($"/tasks/{second}/logs/?follow=true");

        Assert.Equal("second-ran\n", text);
    }

    [EngineFact]
    public async Task MissingImage_FailsWithAReasonNamingTheImage()
    {
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("noimage"), "true", image: "localhost/longshore-missing:latest"));

        var run = await _server.WaitForEndAsync(id, TimeSpan.FromSeconds(120));

        Assert.Equal("TASK_FAILED", run.GetProperty("mesos_state").GetString());
        Assert.Contains("localhost/longshore-missing:latest", run.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    [EngineFact]
    public async Task NoOutput_EndedRunShowsEmptyLogs()
    {
        // An end with no output keeps no logs in the store; the run's logs are empty, not missing or read from the engine.
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("quiet"), "true"));

        var run = await _server.WaitForEndAsync(id);

        Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString());
        var logs = JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/{id}/logs/")).RootElement;
        Assert.Equal(("TASK_FINISHED", "", "", false), (logs.GetProperty("mesos_state").GetString(), logs.GetProperty("stdout").GetString(),
            logs.GetProperty("stderr").GetString(), logs.GetProperty("truncated").GetBoolean()));
    }

    [EngineFact]
    public async Task PayloadLikeEnvironment_ReachesTheContainerUnchanged()
    {
        var tricky = "quote\" single' ; $(touch /tmp/pwned) `id` \n newline";
        var id = await _server.PostTaskAsync(Tasks.Definition(Families.New("env"), "printf '%s' \"$TRICKY\"; test ! -e /tmp/pwned",
            env: new Dictionary<string, string> { ["TRICKY"] = tricky }));

        var run = await _server.WaitForEndAsync(id);

        Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString());
        var logs = JsonDocument.Parse(await _server.Http.GetStringAsync($"/tasks/{id}/logs/")).RootElement;
        Assert.Equal(tricky, logs.GetProperty("stdout").GetString());
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition) => Eventually.WaitUntilAsync(condition, TimeSpan.FromSeconds(30));
}

public sealed class SqliteTaskLifecycleTests(SharedServerFixture fixture) : TaskLifecycleTests(fixture.Server, fixture.Engine), IClassFixture<SharedServerFixture>;

public sealed class PostgresTaskLifecycleTests(PostgresServerFixture fixture) : TaskLifecycleTests(fixture.Server, fixture.Engine), IClassFixture<PostgresServerFixture>;

public sealed class RedisTaskLifecycleTests(RedisServerFixture fixture) : TaskLifecycleTests(fixture.Server, fixture.Engine), IClassFixture<RedisServerFixture>;

/// <summary>The suite on a real kube-apiserver and kubelet (SQLite store): one pod per run.</summary>
[NeedsKubernetes]
[Collection(TestCluster.Collection)]
public sealed class KubernetesTaskLifecycleTests(KubernetesServerFixture fixture) : TaskLifecycleTests(fixture.Server, fixture.Engine);
