using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Longshore.Integration.Tests.Infrastructure;

/// <summary>
/// The real <c>longshore server</c> in a child process, on a free loopback port, with its own data folder, so tests
/// can kill it with SIGKILL and start it again on the same store.
/// </summary>
public sealed class LongshoreServer : IAsyncDisposable
{
    private readonly string[] _extraArgs;
    private readonly IReadOnlyDictionary<string, string?> _environment;
    private Process? _process;
    private readonly StringBuilder _output = new();

    /// <summary>How many servers of this process use each store instance id (several share one on PostgreSQL or Redis).</summary>
    private static readonly Dictionary<string, int> LiveInstances = new(StringComparer.Ordinal);

    /// <summary>The store's instance id, which labels every container this server starts; known once it first answered.</summary>
    private string? _instanceId;

    private LongshoreServer(string dataDir, string[] extraArgs, IReadOnlyDictionary<string, string?> environment)
    {
        DataDir = dataDir;
        _extraArgs = extraArgs;
        _environment = environment;
        Port = FreePort();
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{Port}"), Timeout = TimeSpan.FromSeconds(60) };
    }

    public string DataDir { get; }

    public int Port { get; }

    public HttpClient Http { get; }

    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    public static Task<LongshoreServer> StartAsync(params string[] extraArgs) => StartAsync(new Dictionary<string, string?>(), extraArgs);

    /// <summary>Starts the server with <paramref name="environment"/> added to (or, for null values, removed from) its environment.</summary>
    public static async Task<LongshoreServer> StartAsync(IReadOnlyDictionary<string, string?> environment, params string[] extraArgs)
    {
        var server = new LongshoreServer(Directory.CreateTempSubdirectory("longshore-test-").FullName, extraArgs, environment);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Starts (or restarts) the server on the same data folder and port, and waits until it answers.</summary>
    public async Task StartAgainAsync()
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in (string[])[CliPath, "server", "--urls", $"http://127.0.0.1:{Port}", "--data", DataDir, "--docker-host", TestEngine.Endpoint, .. _extraArgs])
            info.ArgumentList.Add(arg);
        foreach (var (name, value) in _environment)
        {
            if (value is null)
                info.Environment.Remove(name);
            else
                info.Environment[name] = value;
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (process.HasExited)
                throw new InvalidOperationException($"longshore server exited with {process.ExitCode}:\n{Output}");
            try
            {
                using var response = await Http.GetAsync("/healthz");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    if (_instanceId is null && (await response.Content.ReadFromJsonAsync<JsonElement>()).TryGetProperty("store", out var store)
                        && store.TryGetProperty("instance_id", out var id) && id.GetString() is { } instance)
                    {
                        _instanceId = instance;
                        lock (LiveInstances)
                            LiveInstances[instance] = LiveInstances.GetValueOrDefault(instance) + 1;
                    }

                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"longshore server did not answer /healthz within 60 s:\n{Output}");
    }

    public static string CliPath => Path.Combine(AppContext.BaseDirectory, "longshore.dll");

    /// <summary>SIGTERM, as a service manager stops it; returns the exit code.</summary>
    public async Task<int> StopGracefullyAsync()
    {
        var process = _process!;
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return process.ExitCode;
    }

    /// <summary>Sends a signal by name (STOP freezes the process, CONT resumes it).</summary>
    public async Task SignalAsync(string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", _process!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
    }

    /// <summary>The <c>/healthz</c> body, or null when the server does not answer (killed, frozen).</summary>
    public async Task<JsonElement?> HealthAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            using var response = await Http.GetAsync("/healthz", timeout.Token);
            return JsonDocument.Parse(await response.Content.ReadAsStringAsync(timeout.Token)).RootElement.Clone();
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>SIGKILL: no shutdown code runs, exactly like a crash.</summary>
    public async Task KillHardAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    public async Task<string> PostTaskAsync(object definition)
    {
        using var response = await Http.PostAsJsonAsync("/tasks/", definition);
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK)
            throw new InvalidOperationException($"POST /tasks/ gave {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("mesos_id").GetString()!;
    }

    public async Task<JsonElement> GetRunAsync(string mesosId, string? token = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/tasks/{mesosId}/");
        if (token is not null)
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        using var response = await Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    /// <summary>Every run of a family id (a task id, a queue id or a job group key), newest first.</summary>
    public async Task<List<JsonElement>> RunsAsync(string familyId) =>
        JsonDocument.Parse(await Http.GetStringAsync($"/tasks/?id={familyId}&limit=1000")).RootElement.EnumerateArray().Select(r => r.Clone()).ToList();

    public async Task<JsonElement> WaitForStateAsync(string mesosId, Func<string, bool> done, TimeSpan? timeout = null, string? token = null)
    {
        var watch = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        while (true)
        {
            var run = await GetRunAsync(mesosId, token);
            if (done(run.GetProperty("mesos_state").GetString()!))
                return run;
            if (watch.Elapsed > limit)
                throw new TimeoutException($"{mesosId} stayed {run.GetProperty("mesos_state")} for {limit}: {run}\n{Output}");
            await Task.Delay(100);
        }
    }

    public Task<JsonElement> WaitForEndAsync(string mesosId, TimeSpan? timeout = null) =>
        WaitForStateAsync(mesosId, TestStates.IsTerminal, timeout);

    /// <summary>Follows <c>retried_as</c> links from the first run to the last, waiting for each to end.</summary>
    public async Task<List<JsonElement>> WaitForChainAsync(string firstMesosId, TimeSpan? timeout = null)
    {
        var chain = new List<JsonElement>();
        var next = firstMesosId;
        while (next is not null)
        {
            var run = await WaitForEndAsync(next, timeout);
            // The retry is written in the same transaction as the end, so retried_as is already set when it ends.
            chain.Add(run);
            next = run.GetProperty("retried_as").GetString();
        }

        return chain;
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
    }

    /// <summary>
    /// Removes the containers a server killed with SIGKILL left on the engine (ended ones it never released, running ones
    /// it never stopped), once no other server of this process uses its store: hundreds piled up over a day of runs, and
    /// every listing and change on the engine slows with their number.
    /// </summary>
    private async Task RemoveContainersAsync()
    {
        if (_instanceId is not { } instance)
            return;
        lock (LiveInstances)
        {
            var live = LiveInstances[instance] - 1;
            if (live > 0)
            {
                LiveInstances[instance] = live;
                return;
            }

            LiveInstances.Remove(instance);
        }

        await SweepAsync(instance);
        // A create the killed server had sent may still be under way in the engine and land after this sweep (they were
        // found left behind as "Created" containers): a second sweep follows a while later, unless a server of the same
        // store is running again by then. The test run waits for these before it ends.
        lock (LateSweeps)
        {
            LateSweeps.RemoveAll(sweep => sweep.IsCompleted);
            LateSweeps.Add(Task.Run(async () =>
            {
                await Task.Delay(LateSweepDelay);
                lock (LiveInstances)
                {
                    if (LiveInstances.ContainsKey(instance))
                        return;
                }

                await SweepAsync(instance);
            }));
        }
    }

    private static readonly TimeSpan LateSweepDelay = TimeSpan.FromSeconds(5);

    /// <summary>The second sweeps still to come; waited for (a little) when the test process exits.</summary>
    private static readonly List<Task> LateSweeps = CreateLateSweeps();

    private static List<Task> CreateLateSweeps()
    {
        var sweeps = new List<Task>();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            Task[] pending;
            lock (sweeps)
                pending = sweeps.ToArray();
            Task.WhenAll(pending).Wait(LateSweepDelay + TimeSpan.FromSeconds(5));
        };
        return sweeps;
    }

    private static async Task SweepAsync(string instance)
    {
        try
        {
            using var client = TestEngine.CreateClient();
            foreach (var container in await TestEngine.ListByLabelAsync(Longshore.Backends.Docker.DockerBackend.InstanceLabel, instance))
                await client.Containers.RemoveContainerAsync(container.ID, new Docker.DotNet.Models.ContainerRemoveParameters { Force = true });
        }
        catch (Exception e) when (e is Docker.DotNet.DockerApiException or HttpRequestException or IOException or SocketException)
        {
            // Tidying only: an engine that is away (or a container already gone) fails no test.
        }
    }

    /// <summary>A loopback port nothing listens on now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        await KillHardAsync();
        Http.Dispose();
        _process?.Dispose();
        await RemoveContainersAsync();
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

public static class TestStates
{
    public static bool IsTerminal(string state) => state is "TASK_FINISHED" or "TASK_FAILED" or "TASK_KILLED" or "TASK_LOST"
        or "TASK_ERROR" or "TASK_DROPPED" or "TASK_GONE" or "TASK_GONE_BY_OPERATOR" or "TASK_UNKNOWN";
}
