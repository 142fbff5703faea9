using System.Diagnostics;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>Runs a program to its end and collects what it printed.</summary>
public static class Processes
{
    /// <summary>
    /// Runs <paramref name="file"/>; <paramref name="environment"/> adds variables, and removes those given as null.
    /// Throws <see cref="TimeoutException"/> (after killing it) when it outlives <paramref name="timeout"/> (default 120 s).
    /// </summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, IEnumerable<string> args,
        IEnumerable<KeyValuePair<string, string?>>? environment = null, TimeSpan? timeout = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        foreach (var (name, value) in environment ?? [])
        {
            if (value is null)
                info.Environment.Remove(name);
            else
                info.Environment[name] = value;
        }

        if (workingDirectory is not null)
            info.WorkingDirectory = workingDirectory;
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', info.ArgumentList)} did not finish: {await stdout}{await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Like <see cref="RunAsync"/>, but a non-zero exit code throws with everything the program printed.</summary>
    public static async Task<string> RunCheckedAsync(string file, params string[] args)
    {
        var (exitCode, stdout, stderr) = await RunAsync(file, args, timeout: TimeSpan.FromMinutes(10));
        if (exitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {exitCode}:\n{stdout}\n{stderr}");
        return stdout;
    }
}
