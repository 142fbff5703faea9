using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Packaging;

/// <summary>
/// The container image localhost/longshore:latest run as its README says: host networking on 127.0.0.1, the host's
/// engine socket mounted, as its non-root user. The suite's shared podman socket is root's alone (0600), so this test
/// serves the same podman storage on a socket of its own, given to the container's group as Docker's socket is to the
/// docker group.
/// </summary>
public sealed class ImageTests
{
    private const int SocketGroup = 10001;

    [Fact]
    public async Task Image_RunsATaskEndToEnd_AsNonRoot_HealthyByItsHealthCheck_StopsCleanlyOnSigterm()
    {
        await Artifacts.ImageAsync();
        var dir = Directory.CreateTempSubdirectory("longshore-image-").FullName;
        var socket = Path.Combine(dir, "podman.sock");
        var name = Families.New("ls-image");
        var port = LongshoreServer.FreePort();
        using var engine = Process.Start(new ProcessStartInfo("podman", ["system", "service", "--time=0", $"unix://{socket}"])
        {
            WorkingDirectory = dir, RedirectStandardError = true, RedirectStandardOutput = true,
        })!;
        try
        {
            await Eventually.WaitUntilAsync(() => Task.FromResult(File.Exists(socket)), TimeSpan.FromSeconds(30));
            await Processes.RunCheckedAsync("chmod", "0660", socket);
            await Processes.RunCheckedAsync("chgrp", SocketGroup.ToString(CultureInfo.InvariantCulture), socket);

            await Processes.RunCheckedAsync("podman", "run", "-d", "--name", name, "--network", "host", "--group-add", SocketGroup.ToString(CultureInfo.InvariantCulture),
                "-v", $"{socket}:/run/podman/podman.sock", "-e", $"LONGSHORE_URLS=http://127.0.0.1:{port}", "-e", $"LONGSHORE_SERVER=http://127.0.0.1:{port}",
                Artifacts.Image);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
            await Eventually.WaitUntilAsync(() => HealthyAsync(http), TimeSpan.FromSeconds(90), () => Logs(name));

            var family = Families.New("image");
            using var posted = await http.PostAsJsonAsync("/tasks/", Tasks.Definition(family, "echo hello from $MESOS_TASK_ID; id -u"));
            var mesosId = JsonDocument.Parse(await posted.Content.ReadAsStringAsync()).RootElement.GetProperty("mesos_id").GetString()!;
            JsonElement run = default;
            await Eventually.WaitUntilAsync(async () =>
            {
                run = JsonDocument.Parse(await http.GetStringAsync($"/tasks/{mesosId}/")).RootElement.Clone();
                return TestStates.IsTerminal(run.GetProperty("mesos_state").GetString()!);
            }, TimeSpan.FromSeconds(90), () => Logs(name));
            var logs = JsonDocument.Parse(await http.GetStringAsync($"/tasks/{mesosId}/logs/")).RootElement;
            var user = await Processes.RunCheckedAsync("podman", "exec", name, "id", "-u");
            var health = await Processes.RunAsync("podman", ["healthcheck", "run", name]);
            var stop = await Processes.RunAsync("podman", ["stop", "--time", "40", name]);
            var exit = await Processes.RunCheckedAsync("podman", "inspect", "--format", "{{.State.ExitCode}}", name);
            var serverLog = await Processes.RunAsync("podman", ["logs", name]);

            Assert.Equal("TASK_FINISHED", run.GetProperty("mesos_state").GetString());
            Assert.Equal($"hello from {mesosId}\n0\n", logs.GetProperty("stdout").GetString());
            Assert.Equal("10001", user.Trim());
            Assert.True(health.ExitCode == 0, $"healthcheck: {health.Stdout}{health.Stderr}");
            Assert.Equal(0, stop.ExitCode);
            Assert.Equal("0", exit.Trim());
            Assert.Contains("Longshore listening on http://127.0.0.1:" + port, serverLog.Stdout + serverLog.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain(" fail:", serverLog.Stdout + serverLog.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            await Processes.RunAsync("podman", ["rm", "--force", "--volumes", "--time", "0", name]);
            engine.Kill();
            await engine.WaitForExitAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Image_IsTaggedWithTheVersion_SavedForOtherEngines_AndDeclaresItsHealthCheckAndUser()
    {
        await Artifacts.ImageAsync();

        var latest = await Processes.RunCheckedAsync("podman", "image", "inspect", "--format", "{{.Id}}", Artifacts.Image);
        var versioned = await Processes.RunCheckedAsync("podman", "image", "inspect", "--format", "{{.Id}}", $"localhost/longshore:{Artifacts.Version}");
        var inspected = JsonDocument.Parse(await Processes.RunCheckedAsync("podman", "image", "inspect", Artifacts.Image)).RootElement[0];
        var config = inspected.GetProperty("Config");
        var archived = await Processes.RunCheckedAsync("tar", "-xOf", Artifacts.ImageArchive, "manifest.json");

        Assert.Equal(latest, versioned);
        Assert.Equal("longshore", config.GetProperty("User").GetString());
        Assert.Equal(["/usr/bin/longshore", "health"], inspected.GetProperty("Healthcheck").GetProperty("Test").EnumerateArray().Skip(1).Select(e => e.GetString()));
        Assert.Equal(Artifacts.Version, config.GetProperty("Labels").GetProperty("org.opencontainers.image.version").GetString());
        Assert.Contains("\"localhost/longshore:latest\"", archived, StringComparison.Ordinal);
    }

    private static async Task<bool> HealthyAsync(HttpClient http)
    {
        try
        {
            using var response = await http.GetAsync("/healthz");
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    /// <summary>The container's output, for a failure message.</summary>
    private static string Logs(string container)
    {
        using var logs = Process.Start(new ProcessStartInfo("sh", ["-c", "podman logs \"$0\" 2>&1", container]) { RedirectStandardOutput = true })!;
        return logs.StandardOutput.ReadToEnd();
    }
}
