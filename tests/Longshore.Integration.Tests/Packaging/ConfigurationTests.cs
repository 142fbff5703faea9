using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Longshore.Integration.Tests.Infrastructure;

namespace Longshore.Integration.Tests.Packaging;

/// <summary>
/// <c>longshore server</c> settings from a configuration file, LONGSHORE_ variables and the command line, through the real
/// binary: precedence, refusals naming their source, masked secrets, and a file that reaches the running server.
/// </summary>
public sealed partial class ConfigurationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("longshore-config-").FullName;

    [Fact]
    public async Task PrintConfig_CommandLineBeatsEnvironmentBeatsFileBeatsDefault()
    {
        var file = await WriteAsync("""
            {
              // comments are allowed, keys are case-insensitive
              "Capacity": 5, "KILLGRACE": 7, "LogCapBytes": 4096,
              "AllowHostPath": ["/srv/a", "/srv/b"]
            }
            """);

        var (exitCode, stdout, stderr) = await PrintConfigAsync(["--config", file, "--capacity", "9"],
            new() { ["LONGSHORE_CAPACITY"] = "6", ["LONGSHORE_KILL_GRACE"] = "8" });

        Assert.True(exitCode == 0, stderr);
        var settings = Settings(stdout);
        Assert.Equal(("9", "command line"), settings["Capacity"]);
        Assert.Equal(("8", "LONGSHORE_KILL_GRACE"), settings["KillGrace"]);
        Assert.Equal(("4096", "file"), settings["LogCapBytes"]);
        Assert.Equal(("[\"/srv/a\",\"/srv/b\"]", "file"), settings["AllowHostPath"]);
        Assert.Equal(("30", "default"), settings["ReconcileInterval"]);
        Assert.Contains($"file ({file})", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrintConfig_IsAConfigurationFile_ThatReadsBackToTheSameSettings()
    {
        var (_, first, _) = await PrintConfigAsync(["--capacity", "3", "--allow-host-path", "/srv/x", "--store", "sqlite:/var/tmp/ls.db", "--mesos-role", "a,b"],
            new() { ["LONGSHORE_SQLITE_SYNCHRONOUS"] = "NORMAL" });
        var file = await WriteAsync(first);

        var (exitCode, second, stderr) = await PrintConfigAsync(["--config", file]);

        Assert.True(exitCode == 0, stderr);
        var before = Settings(first);
        var after = Settings(second);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.All(before, setting => Assert.Equal(setting.Value.Value, after[setting.Key].Value));
        Assert.Equal(("\"NORMAL\"", "file"), after["SqliteSynchronous"]);
        Assert.Equal(("[\"/srv/x\"]", "file"), after["AllowHostPath"]);
    }

    [Fact]
    public async Task UnknownKeysAndBadValues_RefusedWithExitTwo_EachNamingWhereItCameFrom()
    {
        var file = await WriteAsync("""{ "Capcity": 4, "LogCapBytes": "lots", "RetryBackoffCap": [1, 2], "Mesos": { "Master": "x" } }""");

        var (exitCode, stdout, stderr) = await PrintConfigAsync(["--config", file], new() { ["LONGSHORE_KILL_GRACE"] = "soon" });

        Assert.Equal(2, exitCode);
        Assert.Empty(stdout);
        Assert.Contains($"Capcity in {file}: unknown key; did you mean Capacity?", stderr, StringComparison.Ordinal);
        Assert.Contains($"Mesos in {file}: unknown key", stderr, StringComparison.Ordinal);
        Assert.Contains($"LogCapBytes in {file}: Cannot parse argument 'lots'", stderr, StringComparison.Ordinal);
        Assert.Contains($"RetryBackoffCap in {file}: must be a single value", stderr, StringComparison.Ordinal);
        Assert.Contains("LONGSHORE_KILL_GRACE: Cannot parse argument 'soon'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingOrBrokenFile_AndSettingsBreakingARule_RefusedWithExitTwo()
    {
        var broken = await WriteAsync("{ \"Capacity\": ");
        var missing = Path.Combine(_dir, "missing.json");

        var (missingExit, _, missingError) = await PrintConfigAsync(["--config", missing]);
        var (brokenExit, _, brokenError) = await PrintConfigAsync([], new() { ["LONGSHORE_CONFIG"] = broken });
        var (ruleExit, ruleOutput, ruleError) = await PrintConfigAsync([], new() { ["LONGSHORE_CAPACITY"] = "0" });

        Assert.Equal(2, missingExit);
        Assert.Contains($"config: '{missing}' does not exist", missingError, StringComparison.Ordinal);
        Assert.Equal(2, brokenExit);
        Assert.Contains($"config: '{broken}' could not be read", brokenError, StringComparison.Ordinal);
        Assert.Equal(2, ruleExit);
        Assert.Equal(("0", "LONGSHORE_CAPACITY"), Settings(ruleOutput)["Capacity"]);
        Assert.Contains("capacity: must be between 1 and 100000, got 0", ruleError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Secrets_MaskedEverywhere_WhetherFromFileEnvironmentOrCommandLine()
    {
        var key = Convert.ToBase64String(new byte[32]);
        var file = await WriteAsync($$"""{ "SecretsKey": "{{key}}", "MesosPrincipal": "longshore" }""");
        string[] secrets = ["pg-pass-91x", "op-token-77q", "mesos-pass-55z", key];

        var (exitCode, stdout, stderr) = await PrintConfigAsync(["--config", file, "--mesos-secret", "mesos-pass-55z"], new()
        {
            ["LONGSHORE_STORE"] = "postgres:Host=127.0.0.1;Username=longshore;Password=pg-pass-91x;Database=x",
            ["LONGSHORE_TOKENS"] = "operator:me:op-token-77q",
        });
        var (badExit, _, badError) = await PrintConfigAsync(["--config", file, "--capacity", "1"], new() { ["LONGSHORE_LEADER_LEASE"] = "http://u:pg-pass-91x@x" });
        var (redisExit, redisOutput, _) = await PrintConfigAsync(["--store", "redis:127.0.0.1:6379,password=pg-pass-91x"]);

        Assert.True(exitCode == 0, stderr);
        Assert.All(secrets, secret => Assert.DoesNotContain(secret, stdout + stderr, StringComparison.Ordinal));
        var settings = Settings(stdout);
        Assert.Equal(("\"postgres:Host=127.0.0.1;Username=longshore;Password=***;Database=x\"", "LONGSHORE_STORE"), settings["Store"]);
        Assert.Equal(("\"***\"", "LONGSHORE_TOKENS"), settings["Tokens"]);
        Assert.Equal(("\"***\"", "file"), settings["SecretsKey"]);
        Assert.Equal(("\"***\"", "command line"), settings["MesosSecret"]);
        Assert.Equal(("\"longshore\"", "file"), settings["MesosPrincipal"]);
        Assert.Equal(2, badExit);
        Assert.Contains("LONGSHORE_LEADER_LEASE: Cannot parse argument 'http://u:***@x'", badError, StringComparison.Ordinal);
        Assert.DoesNotContain("pg-pass-91x", badError, StringComparison.Ordinal);
        Assert.Equal(0, redisExit);
        Assert.Contains("redis:127.0.0.1:6379,password=***", redisOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("pg-pass-91x", redisOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigurationFileAndVariables_ReachTheRunningServer()
    {
        var store = Path.Combine(_dir, "from-the-file.db");
        var file = await WriteAsync($$"""{ "Store": "sqlite:{{store}}", "Tokens": "read:reader:file-token-1-abcdefgh" }""");
        var variables = new Dictionary<string, string?> { ["LONGSHORE_TOKENS"] = "operator:ops:env-token-2-abcdefgh" };

        await using var server = await LongshoreServer.StartAsync(variables, "--config", file);
        using var anonymous = await server.Http.GetAsync("/tasks/");
        var body = await server.Http.GetFromJsonAsync<JsonElement>("/healthz");

        // The file's store, the environment's tokens (the variable wins over the file's key).
        Assert.Equal($"sqlite:{store}", body.GetProperty("store").GetProperty("description").GetString());
        Assert.True(File.Exists(store));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.True(await TokenWorksAsync(server, "env-token-2-abcdefgh"));
        Assert.False(await TokenWorksAsync(server, "file-token-1-abcdefgh"));
    }

    private static async Task<bool> TokenWorksAsync(LongshoreServer server, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/tasks/") { Headers = { { "Authorization", "Bearer " + token } } };
        using var response = await server.Http.SendAsync(request);
        return response.IsSuccessStatusCode;
    }

    private static Task<(int ExitCode, string Stdout, string Stderr)> PrintConfigAsync(string[] args, Dictionary<string, string>? environment = null) =>
        CliProcess.RunAsync(["server", "--print-config", .. args], environment);

    /// <summary>Each key of the printed settings with its JSON value and the source named in its comment.</summary>
    private static Dictionary<string, (string Value, string Source)> Settings(string printed) =>
        SettingLine().Matches(printed).ToDictionary(match => match.Groups["key"].Value,
            match => (JsonSerializer.Serialize(JsonDocument.Parse(match.Groups["value"].Value).RootElement), match.Groups["source"].Value.Trim()));

    private async Task<string> WriteAsync(string json)
    {
        var path = Path.Combine(_dir, $"{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(path, json);
        return path;
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [GeneratedRegex("""(?m)^  "(?<key>\w+)": +(?<value>.+?),? +// (?<source>.+)$""")]
    private static partial Regex SettingLine();
}
