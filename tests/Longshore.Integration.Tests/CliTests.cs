using System.Text.Json;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests;

/// <summary>The real <c>longshore</c> binary against a real server.</summary>
public sealed class CliTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private readonly LongshoreServer _server = fixture.Server;

    private string ServerUrl => $"http://127.0.0.1:{_server.Port}";

    [Fact]
    public async Task TaskRunWait_PrintsOutput_AndExitsWithTheContainersExitCode()
    {
        var failed = await CliProcess.RunAsync(["task", "run", TestEngine.Image, "--id", Families.New("cli"), "--mem", "32", "--wait", "--server", ServerUrl, "--", "echo from-cli; exit 7"]);
        var ok = await CliProcess.RunAsync(["task", "run", TestEngine.Image, "--wait", "--env", "WHO=world", "--server", ServerUrl, "--", "echo hello $WHO"]);

        Assert.Equal(7, failed.ExitCode);
        Assert.Contains("from-cli", failed.Stdout, StringComparison.Ordinal);
        Assert.Contains("TASK_FAILED", failed.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, ok.ExitCode);
        Assert.Equal("hello world\n", ok.Stdout);
    }

    [Fact]
    public async Task TaskRun_SeveralArgumentsAfterTheDashes_RunExactlyThatArgumentVector()
    {
        // As after `docker run IMAGE`: the container runs sh with these three arguments, not "sh -c echo hi; exit 7".
        var shell = await CliProcess.RunAsync(["task", "run", TestEngine.Image, "--wait", "--server", ServerUrl, "--", "sh", "-c", "echo hi; exit 7"]);
        // Spaces, quotes, $, an empty argument, an @ (a response file to System.CommandLine) and NAME=VALUE (an assignment to sh) each arrive as they are.
        var words = await CliProcess.RunAsync(["task", "run", TestEngine.Image, "--wait", "--server", ServerUrl, "--",
            "printf", "[%s]", "a b", "", "it's", "\"q\"", "$HOME", "`id`", "@file", "FOO=bar", "*"]);
        var program = await CliProcess.RunAsync(["task", "run", TestEngine.Image, "--wait", "--server", ServerUrl, "--", "FOO=bar", "true"]);

        Assert.Equal((7, "hi\n"), (shell.ExitCode, shell.Stdout));
        Assert.Equal((0, "[a b][][it's][\"q\"][$HOME][`id`][@file][FOO=bar][*]"), (words.ExitCode, words.Stdout));
        // FOO=bar is the program's name, as docker run would take it: there is no such program.
        Assert.NotEqual(0, program.ExitCode);
    }

    [Fact]
    public async Task TaskRun_OneArgumentAfterTheDashes_RunsAsAShellCommandLine()
    {
        var result = await CliProcess.RunAsync(["task", "run", TestEngine.Image, "--wait", "--server", ServerUrl, "--", "echo hello; echo $((1 + 2)); exit 3"]);

        Assert.Equal((3, "hello\n3\n"), (result.ExitCode, result.Stdout));
    }

    [Fact]
    public async Task ReadsWithJson_Parse_AndTablesHaveHeaders()
    {
        var family = Families.New("clijson");
        var started = await CliProcess.RunAsync(["task", "run", TestEngine.Image, "--id", family, "--server", ServerUrl, "--", "echo x"]);
        Assert.Equal(0, started.ExitCode);
        var mesosId = started.Stdout.Trim();
        await _server.WaitForEndAsync(mesosId);

        var list = await CliProcess.RunAsync(["task", "ls", "--id", family, "--json", "--server", ServerUrl]);
        var get = await CliProcess.RunAsync(["task", "get", mesosId, "--json", "--server", ServerUrl]);
        var logs = await CliProcess.RunAsync(["task", "logs", mesosId, "--json", "--server", ServerUrl]);
        var table = await CliProcess.RunAsync(["task", "ls", "--id", family, "--server", ServerUrl]);
        var jobs = await CliProcess.RunAsync(["job", "ls", "--json", "--server", ServerUrl]);

        Assert.Equal(mesosId, JsonDocument.Parse(list.Stdout).RootElement[0].GetProperty("mesos_id").GetString());
        Assert.Equal("TASK_FINISHED", JsonDocument.Parse(get.Stdout).RootElement.GetProperty("mesos_state").GetString());
        Assert.Equal("x\n", JsonDocument.Parse(logs.Stdout).RootElement.GetProperty("stdout").GetString());
        Assert.StartsWith("MESOS_ID", table.Stdout, StringComparison.Ordinal);
        Assert.Contains(mesosId, table.Stdout, StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(jobs.Stdout).RootElement.ValueKind);
    }

    [Fact]
    public async Task JobCreateScaleRemove_FromAFile()
    {
        var id = Families.New("clijob");
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(Jobs.Job(id, Jobs.Group("app", 1))));

        var created = await CliProcess.RunAsync(["job", "create", "-f", file, "--server", ServerUrl]);
        await Jobs.WaitForRunningAsync(id, "app", 1);
        var scaled = await CliProcess.RunAsync(["job", "scale", id, "2", "--server", ServerUrl]);
        await Jobs.WaitForRunningAsync(id, "app", 2);
        var removed = await CliProcess.RunAsync(["job", "rm", id, "--json", "--server", ServerUrl]);
        File.Delete(file);

        Assert.Equal(0, created.ExitCode);
        Assert.Contains(id, created.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, scaled.ExitCode);
        Assert.Equal(0, removed.ExitCode);
        Assert.Equal("STOPPED", JsonDocument.Parse(removed.Stdout).RootElement.GetProperty("job_state").GetString());
    }

    [Fact]
    public async Task Health_ExitsZeroWithTheStatus_OrThreeWhenNothingAnswers()
    {
        var healthy = await CliProcess.RunAsync(["health", "--server", ServerUrl]);
        var json = await CliProcess.RunAsync(["health", "--json", "--server", ServerUrl]);
        var unreachable = await CliProcess.RunAsync(["health", "--server", $"http://127.0.0.1:{LongshoreServer.FreePort()}"]);

        Assert.Equal(0, healthy.ExitCode);
        Assert.StartsWith("ok: engine docker at ", healthy.Stdout, StringComparison.Ordinal);
        Assert.Equal("ok", JsonDocument.Parse(json.Stdout).RootElement.GetProperty("status").GetString());
        Assert.Equal(3, unreachable.ExitCode);
    }

    [Fact]
    public async Task UnreachableServer_ExitCode3_OneClearLine()
    {
        var result = await CliProcess.RunAsync(["task", "ls", "--server", "http://127.0.0.1:9"]);

        Assert.Equal(3, result.ExitCode);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains("cannot reach the Longshore server at http://127.0.0.1:9/", lines[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task UsageErrors_ExitCode2_UnknownTask_ExitCode5()
    {
        var missing = await CliProcess.RunAsync(["task", "run"]);
        var badEnv = await CliProcess.RunAsync(["task", "run", "busybox", "--env", "NOEQUALS", "--server", ServerUrl]);
        var unknown = await CliProcess.RunAsync(["task", "get", "no-such.1", "--server", ServerUrl]);

        Assert.Equal(2, missing.ExitCode);
        Assert.Equal(2, badEnv.ExitCode);
        Assert.Contains("--env", badEnv.Stderr, StringComparison.Ordinal);
        Assert.Equal(5, unknown.ExitCode);
    }

    [Fact]
    public async Task Completion_SuggestsSubcommands()
    {
        var script = await CliProcess.RunAsync(["completion", "bash"]);
        var suggestions = await CliProcess.RunAsync(["[suggest:7]", "task ki"]);

        Assert.Contains("complete -o default -F _longshore longshore", script.Stdout, StringComparison.Ordinal);
        Assert.Equal("kill", suggestions.Stdout.Trim());
    }
}
