using System.Globalization;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// Two real servers with <c>--engine mesos</c> on one PostgreSQL store against the test master: only the leader holds
/// the framework's subscription, and the next leader subscribes as the same framework and adopts its running tasks.
/// </summary>
public sealed class MesosScaleOutTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private readonly string _schema = TestServices.UniqueName("mesosscale");
    private readonly List<LongshoreServer> _servers = [];
    private TestMesosMaster _master = null!;

    public async Task InitializeAsync()
    {
        _master = TestMesosMaster.Start();
        _master.HeartbeatSeconds = 1;
        _master.AddAgent("agent-1", cpus: 8);
        var store = "postgres:" + await TestServices.CreatePostgresSchemaAsync(_schema);
        for (var i = 0; i < 2; i++)
        {
            _servers.Add(await LongshoreServer.StartAsync("--engine", "mesos", "--mesos-master", _master.Uri.ToString(), "--mesos-refuse-seconds", "1",
                "--store", store, "--leader-lease", 3.ToString(CultureInfo.InvariantCulture), "--reconcile-interval", "2"));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var server in _servers)
            await server.DisposeAsync();
        await _master.DisposeAsync();
        await TestServices.DropPostgresSchemaAsync(_schema);
    }

    [Fact]
    public async Task LeaderKilled_TheNextLeaderSubscribesAsTheSameFramework_AndAdoptsItsRunningTasks()
    {
        var leader = await LeaderAsync(Wait);
        var follower = _servers.Single(s => s != leader);
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add(await follower.PostTaskAsync(new
            {
                id = "adopted",
                cmd = "sleep 600",
                mem = 64,
                cpus = 0.5,
                max_concurrent = 10,
                container = new { type = "DOCKER", docker = new { image = "localhost/busybox:latest" } },
            }));
        }

        foreach (var id in ids)
            await follower.WaitForStateAsync(id, state => state == "TASK_RUNNING", Wait);
        // A follower serves a running task's output too: it asks the master where the agent is, and reads the framework id
        // from the store.
        var logs = JsonDocument.Parse(await follower.Http.GetStringAsync($"/tasks/{ids[0]}/logs/")).RootElement;
        Assert.Equal($"output of {ids[0]}\n", logs.GetProperty("stdout").GetString());
        Assert.Equal($"output of {ids[1]}\n", await follower.Http.GetStringAsync($"/tasks/{ids[1]}/logs/?follow=true"));
        // The follower answered the API (and health checks) all along without subscribing: one framework, and only the
        // leader ever logged a subscription.
        var framework = Assert.Single(_master.FrameworkIds);
        Assert.DoesNotContain("Subscribed to Mesos", follower.Output, StringComparison.Ordinal);

        await leader.KillHardAsync();
        var next = await LeaderAsync(Wait);
        Assert.Same(follower, next);
        await Eventually.WaitUntilAsync(() => Task.FromResult(next.Output.Contains($"Subscribed to Mesos as framework {framework}", StringComparison.Ordinal)),
            Wait, () => next.Output);
        var resubscribe = _master.Calls.Last(c => c.Type == "SUBSCRIBE").Body;
        Assert.Equal(framework, resubscribe.GetProperty("framework_id").GetProperty("value").GetString());
        Assert.Equal(framework, Assert.Single(_master.FrameworkIds));

        // Adopted, not relaunched: the new leader's reconciliation finds all three alive, their ends (sent by the master
        // now) end the runs, and nothing was launched again.
        await Eventually.WaitUntilAsync(() => Task.FromResult(next.Output.Contains("Reconciled 3 active runs: 0 gone", StringComparison.Ordinal)), Wait, () => next.Output);
        foreach (var id in ids)
            _master.Finish(id, "TASK_FINISHED", "done");
        foreach (var id in ids)
            Assert.Equal("TASK_FINISHED", (await next.WaitForStateAsync(id, state => state == "TASK_FINISHED", Wait)).GetProperty("mesos_state").GetString());
        Assert.Equal(ids.Order(), _master.Launches.Order());
    }

    private async Task<LongshoreServer> LeaderAsync(TimeSpan timeout) => (await Leaders.WaitAsync(_servers, timeout)).Leader;
}
