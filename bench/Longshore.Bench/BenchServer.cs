using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Longshore.Core.Execution;
using Longshore.Core.Scheduling;
using Longshore.Server.Hosting;
using Longshore.Core.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Longshore.Bench;

/// <summary>A Longshore server in this process on a free loopback port and a fresh data folder.</summary>
internal sealed class BenchServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private BenchServer(WebApplication app, HttpClient http, string dataDir)
    {
        _app = app;
        Http = http;
        DataDir = dataDir;
    }

    public HttpClient Http { get; }

    public IServiceProvider Services => _app.Services;

    public string DataDir { get; }

    /// <param name="configure">Changes to the options, e.g. another engine.</param>
    /// <param name="noop">Run on the no-op engine (every run finishes at once), to measure the control plane alone.</param>
    public static async Task<BenchServer> StartAsync(string endpoint, int capacity, string synchronous = "FULL",
        Func<LongshoreServerOptions, LongshoreServerOptions>? configure = null, bool noop = false, string? store = null)
    {
        var port = FreePort();
        var dataDir = Directory.CreateTempSubdirectory("longshore-bench-").FullName;
        var options = new LongshoreServerOptions
        {
            Urls = $"http://127.0.0.1:{port}",
            DataDir = dataDir,
            DockerHost = endpoint,
            Store = store,
            SqliteSynchronous = synchronous,
            Scheduler = new SchedulerOptions { Capacity = capacity },
            // What is measured is counted from the store: retention (100 ended runs per task id by default) must not
            // delete the runs being counted.
            Retention = new RetentionOptions { MaxAge = TimeSpan.Zero, MaxPerTaskId = 0 },
        };
        var app = await LongshoreHost.BuildAsync(configure?.Invoke(options) ?? options,
            noop ? services => services.AddSingleton<IExecutionBackend>(new NoopBackend(TimeProvider.System)) : null);
        await app.StartAsync();
        var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        return new BenchServer(app, http, dataDir);
    }

    /// <summary>
    /// Waits until the scheduler has taken the lead and read the store: until then new runs and queues wait for it, which
    /// a latency measured from the first request would count.
    /// </summary>
    public async Task WaitForSchedulerAsync()
    {
        var watch = Stopwatch.StartNew();
        while (!JsonDocument.Parse(await Http.GetStringAsync("/healthz")).RootElement.GetProperty("scheduler").GetProperty("reconciled").GetBoolean())
        {
            if (watch.Elapsed > TimeSpan.FromMinutes(1))
                throw new TimeoutException("the scheduler did not reconcile within a minute");
            await System.Threading.Tasks.Task.Delay(50);
        }
    }

    public static object Task(string id, string cmd, int maxConcurrent, double cpus = 0.5) => new Dictionary<string, object>
    {
        ["id"] = id,
        ["cmd"] = cmd,
        ["mem"] = 32,
        ["cpus"] = cpus,
        ["max_concurrent"] = maxConcurrent,
        ["container"] = new Dictionary<string, object> { ["docker"] = new Dictionary<string, object> { ["image"] = "busybox" } },
    };

    public async Task<string> PostAsync(object task)
    {
        using var response = await Http.PostAsJsonAsync("/tasks/", task);
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("mesos_id").GetString()!;
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Http.Dispose();
        Directory.Delete(DataDir, recursive: true);
    }
}
