namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>Runs the real <c>longshore</c> binary.</summary>
public static class CliProcess
{
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IEnumerable<string> args, IDictionary<string, string>? environment = null,
        TimeSpan? timeout = null) =>
        Processes.RunAsync("dotnet", [LongshoreServer.CliPath, .. args],
            [new("LONGSHORE_TOKEN", null), new("LONGSHORE_SERVER", null), .. (environment ?? new Dictionary<string, string>()).Select(pair => new KeyValuePair<string, string?>(pair.Key, pair.Value))],
            timeout);
}
