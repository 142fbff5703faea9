using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// <c>longshore server --engine mesos</c> against a test master that authenticates and applies role ACLs the way the
/// recorded real one does (12-auth): a refusal stops the start with one line, or shows in /healthz when it comes later.
/// The same start-up checks run against the real master in <see cref="RealMesosMasterTests"/>.
/// </summary>
public sealed class MesosAccessTests : IAsyncLifetime
{
    private const string Secret = "s3cret";
    private readonly string _secretFile = Path.GetTempFileName();
    private readonly string _wrongFile = Path.GetTempFileName();
    private TestMesosMaster _master = null!;

    public async Task InitializeAsync()
    {
        _master = TestMesosMaster.Start();
        _master.HeartbeatSeconds = 1;
        _master.Credentials = new() { ["longshore"] = Secret };
        _master.AllowedRoles["longshore"] = ["*", "batch"];
        _master.AddAgent("agent-1");
        await File.WriteAllTextAsync(_secretFile, Secret + "\n");
        await File.WriteAllTextAsync(_wrongFile, "not-the-secret\n");
    }

    public async Task DisposeAsync()
    {
        await _master.DisposeAsync();
        File.Delete(_secretFile);
        File.Delete(_wrongFile);
    }

    private string[] Args(string secretFile, string role, params string[] more) =>
    [
        "server", "--urls", "http://127.0.0.1:0", "--data", Directory.CreateTempSubdirectory("longshore-mesos-access-").FullName, "--engine", "mesos",
        "--mesos-master", _master.Uri.ToString(), "--mesos-principal", "longshore", "--mesos-secret-file", secretFile, "--mesos-role", role, .. more,
    ];

    /// <summary>Runs <c>longshore server</c>, which must stop with exit code 2 and one line naming <paramref name="setting"/>; returns it.</summary>
    public static async Task<string> RefusedStartAsync(string[] args, string setting)
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(args);

        Assert.True(exit == 2, $"exit {exit}: {stderr}");
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"longshore server: {setting}: ", line, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-secret", stderr, StringComparison.Ordinal);
        return line;
    }

    [Fact]
    public async Task Start_WrongSecret_ExitsTwoWithOneLineNamingTheSecretAndNeverItsValue()
    {
        var line = await RefusedStartAsync(Args(_wrongFile, "batch"), "mesos-secret");

        Assert.Contains("'longshore' (401 Unauthorized)", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_RoleTheAclsRefuse_ExitsTwoWithOneLineNamingTheRole()
    {
        var line = await RefusedStartAsync(Args(_secretFile, "batch,forbidden"), "mesos-role");

        Assert.Contains("Not authorized to register framework  with roles { forbidden }", line, StringComparison.Ordinal);
        Assert.Empty(_master.FrameworkIds);
    }

    [Fact]
    public async Task Start_SharedStoreAndWrongSecret_ExitsTwoWithoutSubscribing()
    {
        var schema = TestServices.UniqueName("mesos_access");
        var store = "postgres:" + await TestServices.CreatePostgresSchemaAsync(schema);
        try
        {
            await RefusedStartAsync(Args(_wrongFile, "batch", "--store", store), "mesos-secret");

            // Several instances share the framework: a start-up check must not subscribe, or it would take it over.
            Assert.Equal(0, _master.CallCount("SUBSCRIBE"));
            Assert.NotEmpty(_master.Authorizations);
        }
        finally
        {
            await TestServices.DropPostgresSchemaAsync(schema);
        }
    }

    [Fact]
    public async Task Running_AclsChangeToRefuseTheRole_HealthzSaysWhyUntilTheyAllowItAgain()
    {
        await using var server = await LongshoreServer.StartAsync("--engine", "mesos", "--mesos-master", _master.Uri.ToString(),
            "--mesos-principal", "longshore", "--mesos-secret-file", _secretFile, "--mesos-role", "batch");

        _master.AllowedRoles["longshore"] = ["*"];
        _master.DropStreams();

        JsonElement health = default;
        await Eventually.WaitUntilAsync(async () => (health = await server.HealthAsync() ?? default).ValueKind == JsonValueKind.Object
            && health.GetProperty("engine").GetProperty("error").GetString() is { } error && error.StartsWith("mesos-role: ", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), () => server.Output);
        Assert.Equal("degraded", health.GetProperty("status").GetString());
        Assert.Contains("roles { batch }", health.GetProperty("engine").GetProperty("error").GetString(), StringComparison.Ordinal);
        // Logged as an error each time it is refused, not retried in silence (the console logger writes a moment later).
        await Eventually.WaitUntilAsync(() => Task.FromResult(server.Output.Contains("The Mesos master refuses this framework", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10), () => server.Output);

        _master.AllowedRoles["longshore"] = ["*", "batch"];
        await Eventually.WaitUntilAsync(async () => (await server.HealthAsync())?.GetProperty("status").GetString() == "ok", TimeSpan.FromSeconds(60),
            () => server.Output);
    }
}
