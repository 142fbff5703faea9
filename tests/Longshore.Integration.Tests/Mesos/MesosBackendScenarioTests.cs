using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// The real scheduler and SQLite store with the Mesos backend against the protocol-faithful test master: runs travel
/// WAITING_ON_OFFERS → TASK_STAGING → TASK_STARTING → TASK_RUNNING → terminal through the scheduler's normal path.
/// </summary>
public sealed class MesosBackendScenarioTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private TestMesosMaster _master = null!;
    private MesosHarness _harness = null!;

    public async Task InitializeAsync()
    {
        _master = TestMesosMaster.Start();
        _master.HeartbeatSeconds = 1;
        _harness = await MesosHarness.StartAsync([_master.Uri]);
    }

    public async Task DisposeAsync()
    {
        await _harness.DisposeAsync();
        await _master.DisposeAsync();
    }

    [Fact]
    public async Task Run_OnOneAgent_TravelsToFinishedAndEveryAgentUpdateIsAcknowledged()
    {
        var agent = _master.AddAgent("agent-1");
        var run = await _harness.SubmitAsync("hello", "echo hi; exit 0");

        var done = await _harness.WaitForStateAsync(run.MesosId, TaskState.Finished, Wait);

        Assert.Equal("agent-1", done.Agent);
        Assert.Equal(0, done.ExitCode);
        Assert.NotNull(done.StartedAt);
        await Eventually.WaitUntilAsync(() => Task.FromResult(_master.CallCount("ACKNOWLEDGE") == 3), Wait);
        var subscribe = _master.Calls.First(c => c.Type == "SUBSCRIBE").Body.GetProperty("subscribe").GetProperty("framework_info");
        Assert.True(subscribe.GetProperty("checkpoint").GetBoolean());
        Assert.Equal(604800, subscribe.GetProperty("failover_timeout").GetDouble());
        Assert.Equal(_harness.Backend.FrameworkId, File.ReadAllText(_harness.Options.FrameworkIdFile!));
        var launched = Assert.Single(_master.Tasks);
        Assert.Equal(agent.Id, launched.AgentId);
        Assert.Contains(launched.Json.GetProperty("labels").GetProperty("labels").EnumerateArray(),
            l => l.GetProperty("key").GetString() == "longshore.run" && l.GetProperty("value").GetString() == run.MesosId);
        var logs = await _harness.Backend.ReadLogsAsync(done);
        Assert.Equal($"output of {run.MesosId}\n", logs!.Stdout);
    }

    [Fact]
    public async Task Run_ReconciledWhileItsOutputIsRead_EndsWithExitCodeAndOutputFromTheAgentsUpdate()
    {
        // Seen on the real master under load: the scheduler's reconciliation (every 2 s here) asks about the run while
        // its end is held back for the sandbox read, and the master answers the same end without exit code or output.
        _master.AddAgent("agent-1");
        _master.FilesDelay = TimeSpan.FromSeconds(1);
        var run = await _harness.SubmitAsync("slow-sandbox", "echo hi; exit 0");

        var done = await _harness.WaitForStateAsync(run.MesosId, TaskState.Finished, Wait);

        Assert.Equal(0, done.ExitCode);
        Assert.Equal($"output of {run.MesosId}\n", (await _harness.Store.GetLogsAsync(run.MesosId))?.Stdout);
        Assert.Contains(_master.Calls, c => c.Type == "RECONCILE" && c.Body.GetProperty("reconcile").GetProperty("tasks").GetArrayLength() > 0);
    }

    [Fact]
    public async Task Run_CommandFails_EndsFailedWithTheExitCodeAndSpendsATaskRetry()
    {
        _master.AddAgent("agent-1");
        var run = await _harness.SubmitAsync("fails", "exit 3", taskRetries: 1);

        var failed = await _harness.WaitForStateAsync(run.MesosId, TaskState.Failed, Wait);

        Assert.Equal(3, failed.ExitCode);
        Assert.Contains("exited with status 3", failed.Reason, StringComparison.Ordinal);
        var retry = await _harness.RetryOfAsync(run.MesosId);
        Assert.NotNull(retry);
        await _harness.WaitForStateAsync(retry.MesosId, TaskState.Failed, Wait);
        Assert.Null((await _harness.GetAsync(retry.MesosId)).RetriedAs);
    }

    [Fact]
    public async Task Constraints_FiftyAgents_EveryPlacementHonoursItsConstraint()
    {
        for (var i = 0; i < 50; i++)
            _master.AddAgent($"host-{i:D2}", cpus: 2, mem: 2048, ("rack", $"r{i % 5}"), ("zone", i < 25 ? "east" : "west"));
        var equal = new List<TaskRun>();
        var unique = new List<TaskRun>();
        var maxPer = new List<TaskRun>();
        var like = new List<TaskRun>();
        for (var i = 0; i < 8; i++)
            equal.Add(await _harness.SubmitAsync("pinned", "sleep 600", constraints: [["rack", "EQUAL", "r3"]]));
        for (var i = 0; i < 20; i++)
            unique.Add(await _harness.SubmitAsync("spread", "sleep 600", constraints: [["hostname", "UNIQUE"]]));
        for (var i = 0; i < 12; i++)
            maxPer.Add(await _harness.SubmitAsync("capped", "sleep 600", constraints: [["rack", "MAX_PER", "2"]]));
        for (var i = 0; i < 6; i++)
            like.Add(await _harness.SubmitAsync("westish", "sleep 600", constraints: [["zone", "LIKE", "w.*"], ["hostname", "UNLIKE", "host-4[0-9]"]]));

        var all = equal.Concat(unique).Concat(maxPer).Concat(like).ToArray();
        await Eventually.WaitUntilAsync(async () =>
        {
            var states = await Task.WhenAll(all.Select(r => _harness.GetAsync(r.MesosId)));
            return states.Count(s => s.State == TaskState.Running) >= equal.Count + unique.Count + 10 + like.Count;
        }, Wait);

        var agents = _master.Agents.ToDictionary(a => a.Id);
        TestMesosMaster.Agent Where(TaskRun run) => agents[_master.FindTask(run.MesosId)!.AgentId];
        Assert.All(equal, run => Assert.Equal("r3", Where(run).Attributes["rack"]));
        Assert.Equal(unique.Count, unique.Select(run => Where(run).Hostname).Distinct().Count());
        var placedCapped = maxPer.Where(run => _master.FindTask(run.MesosId) is not null).ToArray();
        Assert.Equal(10, placedCapped.Length);
        Assert.All(placedCapped.GroupBy(run => Where(run).Attributes["rack"]), rack => Assert.True(rack.Count() <= 2, $"{rack.Key} has {rack.Count()}"));
        Assert.All(like, run => Assert.Equal("west", Where(run).Attributes["zone"]));
        Assert.All(like, run => Assert.DoesNotMatch("^host-4[0-9]$", Where(run).Hostname));
        Assert.Equal(_master.Launches.Count, _master.Launches.Distinct().Count());
        Assert.True(_master.CallCount("ACCEPT") < all.Length, "several tasks should share an ACCEPT");
    }

    [Fact]
    public async Task AgentLost_MidTask_RunEndsLostAndIsRetriedOnAnotherAgent()
    {
        var first = _master.AddAgent("agent-a", cpus: 1);
        var run = await _harness.SubmitAsync("survivor", "sleep 600", cpus: 1);
        await _harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);
        Assert.Equal(first.Id, _master.FindTask(run.MesosId)!.AgentId);
        var second = _master.AddAgent("agent-b", cpus: 1);

        _master.LoseAgent(first);

        var lost = await _harness.WaitForStateAsync(run.MesosId, TaskState.Lost, Wait);
        Assert.Contains("REASON_AGENT_REMOVED", lost.Reason, StringComparison.Ordinal);
        TaskRun? retry = null;
        await Eventually.WaitUntilAsync(async () => (retry = await _harness.RetryOfAsync(run.MesosId)) is { State: TaskState.Running }, Wait);
        Assert.Equal("agent-b", retry!.Agent);
        Assert.Equal(second.Id, _master.FindTask(retry.MesosId)!.AgentId);
        Assert.Equal(run.SystemRetriesLeft - 1, retry.SystemRetriesLeft);
    }

    [Fact]
    public async Task StreamDropped_ThenResumed_SameFrameworkAndNoDuplicateLaunch()
    {
        _master.AddAgent("agent-1");
        var run = await _harness.SubmitAsync("steady", "sleep 600");
        await _harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);
        var frameworkId = _harness.Backend.FrameworkId;

        _master.DropStreams();

        await Eventually.WaitUntilAsync(() => Task.FromResult(_master.CallCount("SUBSCRIBE") >= 2 && _master.CallCount("RECONCILE") >= 2), Wait);
        var resubscribe = _master.Calls.Where(c => c.Type == "SUBSCRIBE").Last().Body;
        Assert.Equal(frameworkId, resubscribe.GetProperty("framework_id").GetProperty("value").GetString());
        var next = await _harness.SubmitAsync("steady", "echo after; exit 0");
        await _harness.WaitForStateAsync(next.MesosId, TaskState.Finished, Wait);
        Assert.Equal(TaskState.Running, (await _harness.GetAsync(run.MesosId)).State);
        Assert.Single(_master.Launches, id => id == run.MesosId);
        Assert.Equal(frameworkId, _harness.Backend.FrameworkId);
    }

    [Fact]
    public async Task UnacknowledgedUpdates_ResentByTheMaster_AreAppliedOnce()
    {
        _master.AddAgent("agent-1");
        _master.ResendAfter = TimeSpan.FromMilliseconds(150);
        _master.DropAcks = 4;
        var run = await _harness.SubmitAsync("flaky", "exit 3", taskRetries: 1);

        await _harness.WaitForStateAsync(run.MesosId, TaskState.Failed, Wait);
        await Eventually.WaitUntilAsync(() => Task.FromResult(_master.DropAcks == 0 && _master.UpdateSends.Keys.Any(k => k.StartsWith(run.MesosId + " TASK_FAILED", StringComparison.Ordinal))), Wait);
        await Task.Delay(500);

        var resent = _master.UpdateSends.Where(p => p.Key.StartsWith(run.MesosId, StringComparison.Ordinal)).Sum(p => p.Value);
        Assert.True(resent > 3, $"the master should have re-sent unacknowledged updates, sent {resent}");
        var attempts = await _harness.Store.ListAsync(new Longshore.Core.Storage.RunQuery(10, FamilyId: "flaky"));
        Assert.Equal(2, attempts.Count);
    }

    [Fact]
    public async Task Kill_RunningTask_EndsKilledAfterAKillWithTheGracePeriod()
    {
        _master.AddAgent("agent-1");
        var run = await _harness.SubmitAsync("victim", "sleep 600");
        await _harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);

        await _harness.Scheduler.KillAsync(run.MesosId);

        var killed = await _harness.WaitForStateAsync(run.MesosId, TaskState.Killed, Wait);
        Assert.Null(killed.RetriedAs);
        var kill = _master.Calls.Single(c => c.Type == "KILL").Body.GetProperty("kill");
        Assert.Equal(run.MesosId, kill.GetProperty("task_id").GetProperty("value").GetString());
        Assert.Equal(3_000_000_000L, kill.GetProperty("kill_policy").GetProperty("grace_period").GetProperty("nanoseconds").GetInt64());
        Assert.True(kill.TryGetProperty("agent_id", out _));
    }

    [Fact]
    public async Task Kill_RunStillWaitingForAnOffer_EndsKilledAndIsNeverLaunched()
    {
        _master.AddAgent("small", cpus: 1);
        var run = await _harness.SubmitAsync("toobig", "sleep 600", cpus: 2);
        await Eventually.WaitUntilAsync(() => Task.FromResult(_harness.Backend.PendingCount == 1 && _master.CallCount("DECLINE") > 0), Wait);

        await _harness.Scheduler.KillAsync(run.MesosId);

        var killed = await _harness.WaitForStateAsync(run.MesosId, TaskState.Killed, Wait);
        Assert.Null(killed.RetriedAs);
        Assert.Empty(_master.Launches);
        Assert.Equal(0, _harness.Backend.PendingCount);
    }

    [Fact]
    public async Task Idle_NothingPending_SuppressesThenRevivesForNewWork()
    {
        _master.AddAgent("agent-1");
        await Eventually.WaitUntilAsync(() => Task.FromResult(_master.CallCount("SUPPRESS") > 0), Wait);
        var revivesBefore = _master.CallCount("REVIVE");

        var run = await _harness.SubmitAsync("later", "exit 0");

        await _harness.WaitForStateAsync(run.MesosId, TaskState.Finished, Wait);
        Assert.True(_master.CallCount("REVIVE") > revivesBefore);
    }

    [Fact]
    public async Task SchedulerRestart_RunningTaskAdoptedAndInterruptedLaunchRetried()
    {
        _master.AddAgent("agent-1", cpus: 8);
        var running = await _harness.SubmitAsync("keeps", "sleep 600");
        await _harness.WaitForStateAsync(running.MesosId, TaskState.Running, Wait);
        var frameworkId = _harness.Backend.FrameworkId;
        await _harness.StopSchedulerAsync();
        // A crash between recording TASK_STAGING and the ACCEPT: the master never heard of this run.
        var interrupted = TaskRun.CreateFirst(new TaskDefinition
        {
            Id = "interrupted",
            Cmd = "sleep 600",
            Cpus = 0.5,
            Mem = 64,
            Container = new ContainerSpec { Docker = new DockerSpec { Image = "localhost/busybox:latest" } },
        }, Guid.NewGuid(), TimeProvider.System.GetUtcNow());
        await _harness.Store.InsertAsync(interrupted);
        Assert.True(await _harness.Store.TryTransitionAsync(new Longshore.Core.Storage.RunTransition(interrupted.MesosId, [TaskState.WaitingOnOffers], TaskState.Staging, TimeProvider.System.GetUtcNow())));

        _harness.StartScheduler();

        var lost = await _harness.WaitForStateAsync(interrupted.MesosId, TaskState.Lost, Wait);
        Assert.Contains("Reconciliation", lost.Reason, StringComparison.Ordinal);
        TaskRun? retry = null;
        await Eventually.WaitUntilAsync(async () => (retry = await _harness.RetryOfAsync(interrupted.MesosId)) is { State: TaskState.Running }, Wait);
        Assert.Equal(frameworkId, _harness.Backend.FrameworkId);
        Assert.Equal(2, _master.CallCount("SUBSCRIBE"));
        Assert.Equal(frameworkId, _master.Calls.Where(c => c.Type == "SUBSCRIBE").Last().Body.GetProperty("framework_id").GetProperty("value").GetString());
        Assert.Equal(TaskState.Running, (await _harness.GetAsync(running.MesosId)).State);
        Assert.Single(_master.Launches, id => id == running.MesosId);
        Assert.DoesNotContain(interrupted.MesosId, _master.Launches);
    }

    [Fact]
    public async Task Heartbeats_Stop_BackendResubscribesAndKeepsLaunching()
    {
        _master.AddAgent("agent-1");
        var first = await _harness.SubmitAsync("beat", "exit 0");
        await _harness.WaitForStateAsync(first.MesosId, TaskState.Finished, Wait);

        _master.Silent = true;
        await Task.Delay(TimeSpan.FromSeconds(4.5));
        _master.Silent = false;

        await Eventually.WaitUntilAsync(() => Task.FromResult(_master.CallCount("SUBSCRIBE") >= 2), Wait);
        var second = await _harness.SubmitAsync("beat", "exit 0");
        await _harness.WaitForStateAsync(second.MesosId, TaskState.Finished, Wait);
        Assert.Equal(_harness.Backend.FrameworkId, _master.Calls.Where(c => c.Type == "SUBSCRIBE").Last().Body.GetProperty("framework_id").GetProperty("value").GetString());
    }

    [Fact]
    public async Task Subscribe_ToANonLeader_FollowsTheRedirectToTheLeader()
    {
        await using var follower = TestMesosMaster.Start(leader: _master.Uri);
        await using var harness = await MesosHarness.StartAsync([follower.Uri]);
        _master.AddAgent("agent-1");

        var run = await harness.SubmitAsync("redirected", "exit 0");

        await harness.WaitForStateAsync(run.MesosId, TaskState.Finished, Wait);
        Assert.Empty(follower.Calls);
        Assert.Contains(run.MesosId, _master.Launches);
    }

    [Fact]
    public async Task Reconcile_StagingRunNotYetHandedOver_IsAskedAboutOnlyInTheFirstReconciliation()
    {
        await using var backend = new Longshore.Backends.Mesos.MesosBackend(_harness.Options with { FrameworkIdFile = null }, TimeProvider.System,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Longshore.Backends.Mesos.MesosBackend>.Instance);
        var staging = new TaskRun { MesosId = "handover.1", FamilyId = "handover", Definition = new TaskDefinition { Id = "handover" }, State = TaskState.Staging };

        await backend.ReconcileAsync([staging]);
        using var timeout = new CancellationTokenSource(Wait);
        var answer = await backend.Updates.ReadAsync(timeout.Token);
        Assert.Equal(("handover.1", TaskState.Lost), (answer.MesosId, answer.State));
        await backend.ReconcileAsync([staging]);

        var asked = _master.Calls.Where(c => c.Type == "RECONCILE")
            .Count(c => c.Body.GetProperty("reconcile").GetProperty("tasks").EnumerateArray().Any(t => t.GetProperty("task_id").GetProperty("value").GetString() == "handover.1"));
        Assert.Equal(1, asked);
    }

    [Fact]
    public async Task Principal_WithSecret_EveryCallCarriesBasicAuthAndFrameworkInfoNamesThePrincipal()
    {
        await using var master = TestMesosMaster.Start();
        await using var harness = await MesosHarness.StartAsync([master.Uri], options => options with { Principal = "longshore", Secret = "pa:ss" });
        master.AddAgent("agent-1");

        var run = await harness.SubmitAsync("authed", "exit 0");

        await harness.WaitForStateAsync(run.MesosId, TaskState.Finished, Wait);
        var expected = "Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("longshore:pa:ss"));
        Assert.NotEmpty(master.Authorizations);
        Assert.All(master.Authorizations, header => Assert.Equal(expected, header));
        Assert.Equal("longshore", master.Calls.First(c => c.Type == "SUBSCRIBE").Body.GetProperty("subscribe").GetProperty("framework_info").GetProperty("principal").GetString());
    }

    [Fact]
    public async Task FollowLogs_RunningTask_YieldsItsOutputAndEndsWithTheRun()
    {
        _master.AddAgent("agent-1");
        var run = await _harness.SubmitAsync("followed", "sleep 600");
        var running = await _harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);
        var follow = _harness.Backend.FollowLogs(running);
        Assert.NotNull(follow);

        var chunks = new List<string>();
        await using var reader = follow.GetAsyncEnumerator();
        Assert.True(await reader.MoveNextAsync());
        chunks.Add(reader.Current);
        await _harness.Scheduler.KillAsync(run.MesosId);
        using var timeout = new CancellationTokenSource(Wait);
        while (await reader.MoveNextAsync().AsTask().WaitAsync(timeout.Token))
            chunks.Add(reader.Current);

        Assert.Equal($"output of {run.MesosId}\n", string.Concat(chunks));
        Assert.Equal(TaskState.Killed, (await _harness.WaitForStateAsync(run.MesosId, TaskState.Killed, Wait)).State);
    }

    [Fact]
    public async Task Ports_RunsOnOneAgent_EachTakesFreeOfferedPortsAsAResourceWithItsVariablesAndBridgeMappings()
    {
        _master.AddAgent("agent-1");
        var runs = new List<TaskRun>();
        // One at a time: the second is placed from a later offer, which no longer holds the first one's ports.
        foreach (var family in new[] { "web", "api" })
        {
            var run = await _harness.SubmitAsync(family, "sleep 600", ports: 2);
            await _harness.WaitForStateAsync(run.MesosId, TaskState.Running, Wait);
            runs.Add(run);
        }

        var held = new List<int>();
        foreach (var run in runs)
        {
            var task = _master.FindTask(run.MesosId)!;
            Assert.Equal(2, task.Ports.Length);
            Assert.All(task.Ports, port => Assert.InRange(port, 31000, 32000));
            var env = task.Json.GetProperty("command").GetProperty("environment").GetProperty("variables").EnumerateArray()
                .ToDictionary(v => v.GetProperty("name").GetString()!, v => v.GetProperty("value").GetString());
            Assert.Equal($"{task.Ports[0]}", env["PORT0"]);
            Assert.Equal($"{task.Ports[1]}", env["PORT1"]);
            Assert.Equal($"{task.Ports[0]}", env["PORT"]);
            Assert.Equal($"{task.Ports[0]},{task.Ports[1]}", env["PORTS"]);
            var mappings = task.Json.GetProperty("container").GetProperty("docker").GetProperty("port_mappings").EnumerateArray()
                .Select(m => (m.GetProperty("host_port").GetInt32(), m.GetProperty("container_port").GetInt32(), m.GetProperty("protocol").GetString())).ToList();
            Assert.Equal(task.Ports.Select(port => (port, port, (string?)"tcp")), mappings);
            held.AddRange(task.Ports);
        }

        Assert.Equal(4, held.Distinct().Count());
    }
}
