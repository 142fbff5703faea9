using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Backends.Mesos;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Server.Hosting;

namespace Longshore.Integration.Tests.Mesos;

/// <summary><c>longshore server --engine mesos</c> end to end against the test master, and its option checks.</summary>
public sealed class MesosServerTests
{
    [Fact]
    public async Task Server_EngineMesos_RunsATaskFromTheApiToFinished()
    {
        await using var master = TestMesosMaster.Start();
        master.HeartbeatSeconds = 1;
        master.AddAgent("agent-1");
        await using var server = await LongshoreServer.StartAsync("--engine", "mesos", "--mesos-master", master.Uri.ToString(), "--mesos-refuse-seconds", "1",
            "--mesos-framework-name", "longshore-nightly");

        using var created = await server.Http.PostAsJsonAsync("/tasks/", new
        {
            id = "mesos-e2e",
            cmd = "echo hi; exit 0",
            mem = 64,
            cpus = 0.5,
            container = new { type = "DOCKER", docker = new { image = "localhost/busybox:latest" } },
        });
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var mesosId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("mesos_id").GetString()!;

        JsonElement run = default;
        await Eventually.WaitUntilAsync(async () =>
        {
            run = await server.Http.GetFromJsonAsync<JsonElement>($"/tasks/{mesosId}/");
            return run.GetProperty("mesos_state").GetString() == "TASK_FINISHED";
        }, TimeSpan.FromSeconds(30), () => server.Output + "\nmaster calls: " + string.Join(",", master.Calls.Select(c => c.Type)));

        Assert.Equal("agent-1", run.GetProperty("mesos_agent").GetString());
        Assert.Contains(mesosId, master.Launches);
        var subscribe = master.Calls.First(c => c.Type == "SUBSCRIBE").Body.GetProperty("subscribe").GetProperty("framework_info");
        Assert.Equal("longshore-nightly", subscribe.GetProperty("name").GetString());
        var health = await server.Http.GetFromJsonAsync<JsonElement>("/healthz");
        Assert.Equal("mesos", health.GetProperty("engine").GetProperty("name").GetString());
        Assert.True(File.Exists(Path.Combine(server.DataDir, "mesos-framework-id")));
        using var logs = await server.Http.GetAsync($"/tasks/{mesosId}/logs/");
        Assert.Equal(HttpStatusCode.OK, logs.StatusCode);
        Assert.Contains($"output of {mesosId}", await logs.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_EngineMesosWithBadSettings_ExitsTwoNamingEverySetting()
    {
        var data = Directory.CreateTempSubdirectory("longshore-mesos-opts-").FullName;

        var (exit, _, stderr) = await CliProcess.RunAsync(["server", "--data", data, "--engine", "mesos", "--mesos-role", "a b", "--mesos-framework-name", " ",
            "--mesos-failover-timeout", "0", "--mesos-refuse-seconds", "-1", "--mesos-secret-file", "/nonexistent/secret"]);

        Assert.Equal(2, exit);
        Assert.Contains("mesos-master:", stderr, StringComparison.Ordinal);
        Assert.Contains("mesos-role:", stderr, StringComparison.Ordinal);
        Assert.Contains("mesos-framework-name: must not be empty", stderr, StringComparison.Ordinal);
        Assert.Contains("mesos-failover-timeout:", stderr, StringComparison.Ordinal);
        Assert.Contains("mesos-refuse-seconds:", stderr, StringComparison.Ordinal);
        Assert.Contains("mesos-secret-file:", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_ZookeeperMasterList_ExitsTwoWithOneLineSayingWhatToGiveInstead()
    {
        var data = Directory.CreateTempSubdirectory("longshore-mesos-zk-").FullName;

        var (exit, _, stderr) = await CliProcess.RunAsync(["server", "--data", data, "--engine", "mesos", "--mesos-master", "zk://zk1:2181,zk2:2181/mesos"]);

        Assert.Equal(2, exit);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("longshore server: mesos-master: zk:// discovery is not supported", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_UnknownEngineAndZookeeperMaster_NamesBoth()
    {
        var errors = new LongshoreServerOptions { Engine = "nomad" }.Validate();
        var mesos = new LongshoreServerOptions { Engine = "mesos", Mesos = new MesosBackendOptions { Masters = [new Uri("zk://zk1:2181/mesos")] } }.Validate();

        Assert.Contains(errors, e => e.StartsWith("engine:", StringComparison.Ordinal));
        var zk = Assert.Single(mesos, e => e.StartsWith("mesos-master:", StringComparison.Ordinal));
        Assert.Contains("zk:// discovery is not supported; list every master's HTTP address instead", zk, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_RolesListedTwiceOrBlank_NamesTheSetting()
    {
        var twice = new MesosBackendOptions { Masters = [new Uri("http://m:5050")], Roles = ["batch", "batch"] }.Validate();
        var blank = new MesosBackendOptions { Masters = [new Uri("http://m:5050")], Roles = ["batch", ""] }.Validate();
        var fine = new MesosBackendOptions { Masters = [new Uri("http://m:5050")], Roles = ["batch", "web"] }.Validate();

        Assert.Equal("mesos-role: a role is listed twice in 'batch,batch'", Assert.Single(twice));
        Assert.Equal("mesos-role: each role must be a name without spaces such as * or batch, got ''", Assert.Single(blank));
        Assert.Empty(fine);
    }

    [Fact]
    public void ToString_WithSecret_NeverShowsIt()
    {
        var options = new MesosBackendOptions { Masters = [new Uri("http://m:5050")], Principal = "longshore", Secret = "s3cr3t-value" };

        Assert.DoesNotContain("s3cr3t-value", options.ToString(), StringComparison.Ordinal);
        Assert.Contains("longshore", options.ToString(), StringComparison.Ordinal);
    }
}
