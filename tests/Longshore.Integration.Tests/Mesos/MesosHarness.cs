using Longshore.Backends.Mesos;
using Longshore.Core.Scheduling;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Integration.Tests.Infrastructure;
using Longshore.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Longshore.Integration.Tests.Mesos;

/// <summary>
/// The real scheduler (Core) with the real SQLite store and the Mesos backend, against a master: the test master, or
/// a real one. Restartable: a restart keeps the store and the framework id file, as a server restart would.
/// </summary>
public sealed class MesosHarness : IAsyncDisposable
{
    private readonly string _dataDir;
    private CancellationTokenSource? _stop;
    private Task? _running;

    private MesosHarness(string dataDir, SqliteTaskStore store, MesosBackendOptions options)
    {
        _dataDir = dataDir;
        Store = store;
        Options = options;
    }

    public SqliteTaskStore Store { get; }

    public MesosBackendOptions Options { get; }

    /// <summary>Image of the submitted runs.</summary>
    public string Image { get; init; } = "localhost/busybox:latest";

    public MesosBackend Backend { get; private set; } = null!;

    public Scheduler Scheduler { get; private set; } = null!;

    public SchedulerOptions SchedulerOptions { get; init; } = new()
    {
        Capacity = 200,
        IdleInterval = TimeSpan.FromMilliseconds(100),
        ReconcileInterval = TimeSpan.FromSeconds(2),
        KillGrace = TimeSpan.FromSeconds(3),
    };

    public static async Task<MesosHarness> StartAsync(IReadOnlyList<Uri> masters, Func<MesosBackendOptions, MesosBackendOptions>? configure = null,
        string? image = null)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "longshore-mesos-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dataDir);
        var store = await SqliteTaskStore.OpenAsync(Path.Combine(dataDir, "longshore.db"), "NORMAL");
        var options = new MesosBackendOptions
        {
            Masters = masters,
            FrameworkName = "longshore-test",
            FrameworkIdFile = Path.Combine(dataDir, "mesos-framework-id"),
            RefuseSeconds = 1,
        };
        var harness = new MesosHarness(dataDir, store, configure?.Invoke(options) ?? options) { Image = image ?? "localhost/busybox:latest" };
        harness.StartScheduler();
        return harness;
    }

    public void StartScheduler()
    {
        Backend = new MesosBackend(Options, TimeProvider.System, NullLogger<MesosBackend>.Instance);
        Scheduler = new Scheduler(Store, Backend, new RetryPolicy(new RetryOptions { BackoffBase = TimeSpan.FromMilliseconds(50), BackoffCap = TimeSpan.FromMilliseconds(200) }, () => 0.5),
            SchedulerOptions, TimeProvider.System, Guid.NewGuid, new SchedulerMetrics(), NullLogger<Scheduler>.Instance);
        _stop = new CancellationTokenSource();
        var stop = _stop.Token;
        _running = Task.Run(() => Scheduler.RunAsync(stop), CancellationToken.None);
    }

    /// <summary>Stops the scheduler and drops the backend's connection, as a crashed or stopped server would.</summary>
    public async Task StopSchedulerAsync()
    {
        await _stop!.CancelAsync();
        await _running!.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await Backend.DisposeAsync();
        _stop.Dispose();
    }

    public async Task<TaskRun> SubmitAsync(string family, string cmd, double cpus = 0.5, double mem = 64, List<List<string>>? constraints = null,
        int taskRetries = 0, int systemRetries = 2, int ports = 0, Func<TaskDefinition, TaskDefinition>? shape = null)
    {
        var definition = new TaskDefinition
        {
            Id = family,
            Ports = ports,
            Cpus = cpus,
            Mem = mem,
            Cmd = cmd,
            Constraints = constraints,
            TaskRetries = taskRetries,
            SystemRetries = systemRetries,
            MaxConcurrent = 1000,
            Container = new ContainerSpec { Docker = new DockerSpec { Image = Image } },
        };
        var run = TaskRun.CreateFirst(shape?.Invoke(definition) ?? definition, Guid.NewGuid(), TimeProvider.System.GetUtcNow());
        await Store.InsertAsync(run);
        Scheduler.Nudge();
        return run;
    }

    public async Task<TaskRun> GetAsync(string mesosId) => (await Store.GetAsync(mesosId))!;

    public async Task<TaskRun> WaitForStateAsync(string mesosId, TaskState state, TimeSpan? timeout = null)
    {
        await Eventually.WaitUntilAsync(async () => (await Store.GetAsync(mesosId))?.State == state, timeout ?? TimeSpan.FromSeconds(20),
            () => $"{mesosId} is {Store.GetAsync(mesosId).GetAwaiter().GetResult()?.State}");
        return (await Store.GetAsync(mesosId))!;
    }

    /// <summary>The next attempt made after <paramref name="mesosId"/> ended.</summary>
    public async Task<TaskRun?> RetryOfAsync(string mesosId) =>
        (await Store.GetAsync(mesosId))?.RetriedAs is { } next ? await Store.GetAsync(next) : null;

    public async ValueTask DisposeAsync()
    {
        if (_stop is { IsCancellationRequested: false })
            await StopSchedulerAsync();
        Store.Dispose();
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
