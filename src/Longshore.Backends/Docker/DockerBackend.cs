using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Docker.DotNet;
using Docker.DotNet.Models;
using Longshore.Core.Execution;
using Longshore.Core.Tasks;
using TaskState = Longshore.Core.Tasks.TaskState;
using Microsoft.Extensions.Logging;

namespace Longshore.Backends.Docker;

/// <summary>
/// Runs each task run as one container on a Docker Engine API (Docker or Podman). The container is named after the
/// run and labelled with it, so a second launch of the same run finds the first container instead of starting another,
/// and reconciliation can ask the engine what of this store's is there.
/// </summary>
public sealed partial class DockerBackend : IExecutionBackend, ITaskLogSource, ITaskExec, IDisposable
{
    public const string RunLabel = "longshore.run";
    public const string FamilyLabel = "longshore.family";
    public const string InstanceLabel = "longshore.instance";
    public const string AttemptLabel = "longshore.attempt";

    private const int SigkillExitStatus = 137;

    private readonly DockerClient _client;
    private readonly DockerBackendOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<string, Task> _watchers = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    public DockerBackend(DockerBackendOptions options, TimeProvider time, ILogger<DockerBackend> logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
        // Waits and followed logs stay open as long as a container runs: no client-side timeout.
        _client = new DockerClientBuilder().WithEndpoint(options.Endpoint).WithTimeout(Timeout.InfiniteTimeSpan).Build();
    }

    public string Name => "docker";

    public ChannelReader<StatusUpdate> Updates => _updates.Reader;

    public static string ContainerName(string mesosId) => "longshore-" + mesosId;

    public async Task CheckAvailableAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.System.PingAsync(cancellationToken);
        }
        catch (Exception e) when (IsUnreachable(e))
        {
            throw new EngineUnavailableException($"the engine at {_options.Endpoint} does not answer: {e.GetBaseException().Message}", e);
        }
    }

    public async Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        var image = run.Definition.Container!.Docker!.Image!;
        if (run.Definition.Container.Docker.ForcePullImage)
            await PullAsync(image, cancellationToken);

        var id = await CreateAsync(run, image, cancellationToken);
        Emit(new StatusUpdate(run.MesosId, TaskState.Starting, _time.GetUtcNow()) { ContainerId = id, Agent = Environment.MachineName });
        try
        {
            await _client.Containers.StartContainerAsync(id, new ContainerStartParameters(), cancellationToken);
        }
        catch (DockerApiException e)
        {
            // The engine refused to start it (a bad command, mount or limit): the same spec fails the same way again.
            await RemoveQuietlyAsync(id);
            throw new LaunchException($"the engine could not start the container: {Describe(e)}", isTransient: false, e);
        }
        catch (Exception e) when (IsUnreachable(e))
        {
            throw new LaunchException($"the engine at {_options.Endpoint} did not answer: {e.GetBaseException().Message}", isTransient: true, e);
        }

        Watch(run, id, ReportRunning(run.MesosId, id));
        return new LaunchResult(id, Environment.MachineName);
    }

    private async Task<string> CreateAsync(TaskRun run, string image, CancellationToken cancellationToken)
    {
        var parameters = CreateParameters(run, image);
        for (var pulled = false; ; pulled = true)
        {
            try
            {
                return (await _client.Containers.CreateContainerAsync(parameters, cancellationToken)).ID;
            }
            catch (DockerImageNotFoundException) when (!pulled)
            {
                await PullAsync(image, cancellationToken);
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.Conflict)
            {
                // The name is the run's: the container exists from an earlier attempt at this same launch.
                var existing = await _client.Containers.InspectContainerAsync(ContainerName(run.MesosId), cancellationToken);
                return existing.ID;
            }
            catch (DockerApiException e) when ((int)e.StatusCode < 500)
            {
                throw new LaunchException($"the engine refused the container: {Describe(e)}", isTransient: false, e);
            }
            catch (DockerApiException e)
            {
                throw new LaunchException($"the engine failed to create the container: {Describe(e)}", isTransient: true, e);
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                throw new LaunchException($"the engine at {_options.Endpoint} did not answer: {e.GetBaseException().Message}", isTransient: true, e);
            }
        }
    }

    private CreateContainerParameters CreateParameters(TaskRun run, string image)
    {
        var definition = run.Definition;
        var env = new Dictionary<string, string>(definition.Env ?? [], StringComparer.Ordinal)
        {
            ["MESOS_TASK_ID"] = run.MesosId,
            ["LONGSHORE_MESOS_ID"] = run.MesosId,
            ["LONGSHORE_ATTEMPT"] = run.Attempt.ToString(CultureInfo.InvariantCulture),
        };
        var ports = FreeHostPorts(definition.Ports);
        TaskPorts.AddVariables(env, ports);
        var bridge = definition.Container!.Docker!.Network != "HOST";
        var memoryBytes = (long)(definition.Mem * 1024 * 1024);
        return new CreateContainerParameters
        {
            Name = ContainerName(run.MesosId),
            Image = image,
            Entrypoint = definition.Cmd is null ? null! : ["/bin/sh", "-c"],
            Cmd = definition.Cmd is null ? null! : [definition.Cmd],
            Env = env.Select(pair => $"{pair.Key}={pair.Value}").ToList(),
            ExposedPorts = bridge && ports.Length > 0 ? ports.ToDictionary(port => PortKey(port), _ => new EmptyStruct()) : null!,
            Labels = new Dictionary<string, string>
            {
                [RunLabel] = run.MesosId,
                [FamilyLabel] = run.FamilyId,
                [InstanceLabel] = _options.InstanceId,
                [AttemptLabel] = run.Attempt.ToString(CultureInfo.InvariantCulture),
            },
            HostConfig = new HostConfig
            {
                Memory = memoryBytes,
                // Swap equal to the limit means no swap: going over the limit is an out-of-memory kill.
                MemorySwap = memoryBytes,
                CPUPeriod = 100_000,
                CPUQuota = (long)Math.Round(definition.Cpus * 100_000),
                NetworkMode = bridge ? "bridge" : "host",
                // On the bridge each port is published to the same number inside, so $PORT0 means the same on both sides.
                PortBindings = bridge && ports.Length > 0
                    ? ports.ToDictionary(port => PortKey(port), port => (IList<PortBinding>)[new PortBinding { HostPort = port.ToString(CultureInfo.InvariantCulture) }])
                    : null!,
                Binds = (definition.Container.Volumes ?? []).Select(v => $"{v.HostPath}:{v.ContainerPath}:{v.Mode.ToLowerInvariant()}").ToList(),
                Privileged = false,
                SecurityOpt = ["no-new-privileges"],
            },
        };
    }

    private static string PortKey(int port) => port.ToString(CultureInfo.InvariantCulture) + "/tcp";

    /// <summary>
    /// Host ports nobody listens on now, as the kernel hands them out for a listener on port 0. A port is only promised,
    /// not held, until the task binds it; the kernel picks at random from its ephemeral range, so two tasks are unlikely
    /// to be given the same one.
    /// </summary>
    private static int[] FreeHostPorts(int count)
    {
        var listeners = new List<TcpListener>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var listener = new TcpListener(IPAddress.Any, 0);
                listener.Start();
                listeners.Add(listener);
            }

            return listeners.Select(listener => ((IPEndPoint)listener.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var listener in listeners)
                listener.Stop();
        }
    }

    private async Task PullAsync(string image, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.PullTimeout);
        var errors = new StringBuilder();
        try
        {
            await _client.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = image }, null,
                new Progress<JSONMessage>(m => errors.Append(m.Error?.Message)), timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new LaunchException($"image '{image}' is not on the engine and pulling it took longer than {_options.PullTimeout.TotalSeconds} s", isTransient: true);
        }
        catch (DockerApiException e)
        {
            throw new LaunchException($"image '{image}' is not on the engine and could not be pulled: {Describe(e)}", isTransient: false, e);
        }
        catch (Exception e) when (IsUnreachable(e))
        {
            throw new LaunchException($"the engine at {_options.Endpoint} did not answer while pulling '{image}': {e.GetBaseException().Message}", isTransient: true, e);
        }

        if (errors.Length > 0)
            throw new LaunchException($"image '{image}' is not on the engine and could not be pulled: {errors}", isTransient: false);
    }

    /// <param name="running">When the run was reported running (or, adopted, recorded so): its end is reported as this plus how long the container ran.</param>
    private void Watch(TaskRun run, string containerId, DateTimeOffset running)
    {
        _watchers.GetOrAdd(run.MesosId, _ => Task.Run(async () =>
        {
            try
            {
                await WatchAsync(run, containerId, running, _stopping.Token);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                LogWatchFailed(run.MesosId, e);
            }
            finally
            {
                _watchers.TryRemove(run.MesosId, out var _);
            }
        }));
    }

    /// <summary>Waits for the container to exit, keeps its output, and reports the end.</summary>
    private async Task WatchAsync(TaskRun run, string containerId, DateTimeOffset running, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (true)
        {
            try
            {
                await _client.Containers.WaitContainerAsync(containerId, cancellationToken);
                break;
            }
            catch (DockerContainerNotFoundException)
            {
                EmitLost(run.MesosId);
                return;
            }
            catch (Exception e) when (IsUnreachable(e) || e is DockerApiException { StatusCode: >= HttpStatusCode.InternalServerError })
            {
                // The engine being away does not stop the container: keep waiting rather than declare it lost.
                LogEngineAway(run.MesosId, delay.TotalSeconds, e.GetBaseException().Message);
                await Task.Delay(delay, _time, cancellationToken);
                delay = TimeSpan.FromSeconds(Math.Min(30, delay.TotalSeconds * 2));
            }
        }

        ContainerInspectResponse inspect;
        TaskLogs logs;
        try
        {
            inspect = await _client.Containers.InspectContainerAsync(containerId, cancellationToken);
            logs = await ReadLogsAsync(containerId, follow: false, cancellationToken);
        }
        catch (DockerContainerNotFoundException)
        {
            EmitLost(run.MesosId);
            return;
        }

        var exitCode = (int)(inspect.State?.ExitCode ?? -1);
        var oom = inspect.State?.OOMKilled ?? false;
        var state = exitCode == 0 && !oom ? TaskState.Finished : TaskState.Failed;
        var limit = run.Definition.Mem.ToString(CultureInfo.InvariantCulture);
        var reason = oom
            ? $"out of memory: the container went over its {limit} MB memory limit and was killed (exit status {exitCode})"
            : exitCode == SigkillExitStatus
                // Podman on cgroup v1 never sets OOMKilled. Nothing of ours sent this SIGKILL (a kill request turns the
                // end into TASK_KILLED before this reason is seen), so the kernel's OOM killer is by far the likeliest.
                ? $"out of memory (inferred): killed by SIGKILL, exit status {exitCode}, while limited to {limit} MB; the engine did not report why"
                : $"Container exited with status {exitCode}";
        if (!string.IsNullOrEmpty(inspect.State?.Error))
            reason += ": " + inspect.State.Error;
        Emit(new StatusUpdate(run.MesosId, state, EndedAt(inspect.State, running))
        {
            ExitCode = exitCode,
            Reason = reason,
            Logs = logs,
            ContainerId = containerId,
        });
    }

    /// <summary>
    /// When the run ended: its report as running plus how long the container ran by the engine's own clock. The wait,
    /// inspection and log read that follow an exit take seconds on a busy engine, and a run's length decides whether a
    /// job replica crashed (and is backed off) or ran; the engine's start and exit times measure it exactly, and adding
    /// that length to the running report keeps both of a run's times on this machine's clock. Never before the running
    /// report nor after now; the time of the report when the engine gives no times.
    /// </summary>
    private DateTimeOffset EndedAt(State? state, DateTimeOffset running)
    {
        var now = _time.GetUtcNow();
        if (EngineTime(state?.StartedAt) is not { } started || EngineTime(state?.FinishedAt) is not { } finished || finished < started)
            return now;
        var ended = running + (finished - started);
        return ended > now ? now : ended;
    }

    private static DateTimeOffset? EngineTime(string? text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) && time.Year >= 2000 ? time : null;

    /// <summary>Reports the run running on this machine now, and returns that time (its end is measured from it).</summary>
    private DateTimeOffset ReportRunning(string mesosId, string containerId)
    {
        var now = _time.GetUtcNow();
        Emit(new StatusUpdate(mesosId, TaskState.Running, now) { ContainerId = containerId, Agent = Environment.MachineName });
        return now;
    }

    private void EmitLost(string mesosId) =>
        Emit(new StatusUpdate(mesosId, TaskState.Lost, _time.GetUtcNow()) { Reason = "container vanished: the engine no longer holds it" });

    private void Emit(StatusUpdate update) => _updates.Writer.TryWrite(update);

    public async Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.Containers.StopContainerAsync(ContainerName(run.MesosId),
                new ContainerStopParameters { WaitBeforeKillSeconds = (uint)Math.Ceiling(grace.TotalSeconds) }, cancellationToken);
            return true;
        }
        catch (DockerContainerNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Created less than <c>AbandonedCreateAge</c> ago: possibly a launch still under way.</summary>
    private bool IsYoung(ContainerListResponse container)
    {
        var created = container.Created.Kind == DateTimeKind.Local ? container.Created.ToUniversalTime() : DateTime.SpecifyKind(container.Created, DateTimeKind.Utc);
        return _time.GetUtcNow() - new DateTimeOffset(created) < _options.AbandonedCreateAge;
    }

    public async Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default)
    {
        var containers = await _client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{InstanceLabel}={_options.InstanceId}"] = true },
            },
        }, cancellationToken);
        var byRun = containers
            .Where(c => c.Labels is not null && c.Labels.ContainsKey(RunLabel))
            .GroupBy(c => c.Labels[RunLabel], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);

        var gone = new List<string>();
        TimeSpan? recheck = null;
        foreach (var run in active)
        {
            if (!byRun.TryGetValue(run.MesosId, out var container))
            {
                gone.Add(run.MesosId);
                continue;
            }

            if (_watchers.ContainsKey(run.MesosId))
                continue;
            if (container.State is "created" or "configured" && run.State is TaskState.Staging or TaskState.Starting)
            {
                // The launch stopped between create and start (a crash, a change of leader): the container never ran, so
                // starting it now completes that one launch. Waiting on it instead would report a run that never ran as exit 0.
                // A young one is left for the next reconciliation: the start may be on its way, and a container that ran
                // and exited meanwhile would run again if started now.
                if (IsYoung(container))
                {
                    // Decided once it is old enough: soon, not at the next regular reconciliation (a minute by default).
                    recheck = _options.AbandonedCreateAge;
                    continue;
                }

                try
                {
                    await _client.Containers.StartContainerAsync(container.ID, new ContainerStartParameters(), cancellationToken);
                    Watch(run, container.ID, ReportRunning(run.MesosId, container.ID));
                }
                catch (DockerApiException)
                {
                    await RemoveQuietlyAsync(container.ID);
                    gone.Add(run.MesosId);
                }

                continue;
            }

            // Adopt: a running container is reported running; one that exited meanwhile is reported by its watcher at once.
            var since = container.State == "running" && run.State is TaskState.Staging or TaskState.Starting
                ? ReportRunning(run.MesosId, container.ID)
                : run.StartedAt ?? run.StagedAt ?? run.CreatedAt;
            Watch(run, container.ID, since);
        }

        var activeIds = active.Select(run => run.MesosId).ToHashSet(StringComparer.Ordinal);
        var orphans = 0;
        foreach (var container in containers)
        {
            string? runId = null;
            container.Labels?.TryGetValue(RunLabel, out runId);
            if (runId is not null && activeIds.Contains(runId))
                continue;
            // A young container may be a launch under way whose run was staged after the caller read the active runs:
            // removing it would kill that launch. A real orphan is still there at the next reconciliation.
            if (IsYoung(container))
                continue;
            await RemoveQuietlyAsync(container.ID);
            orphans++;
        }

        return new ReconcileResult(gone, orphans) { RecheckAfter = recheck };
    }

    public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => RemoveQuietlyAsync(ContainerName(run.MesosId));

    private async Task RemoveQuietlyAsync(string nameOrId)
    {
        try
        {
            await _client.Containers.RemoveContainerAsync(nameOrId, new ContainerRemoveParameters { Force = true }, CancellationToken.None);
        }
        catch (DockerContainerNotFoundException)
        {
        }
    }

    public async Task<TaskLogs?> ReadLogsAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        try
        {
            return await ReadLogsAsync(ContainerName(run.MesosId), follow: false, cancellationToken);
        }
        catch (DockerContainerNotFoundException)
        {
            return null;
        }
    }

    private async Task<TaskLogs> ReadLogsAsync(string container, bool follow, CancellationToken cancellationToken)
    {
        using var stream = await _client.Containers.GetContainerLogsAsync(container,
            new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Follow = follow }, cancellationToken);
        return await LogTail.ReadAsync(stream, _options.LogCapBytes, cancellationToken);
    }

    public IAsyncEnumerable<string>? FollowLogs(TaskRun run, CancellationToken cancellationToken = default) => FollowAsync(run, cancellationToken);

    private async IAsyncEnumerable<string> FollowAsync(TaskRun run, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        MultiplexedStream stream;
        try
        {
            stream = await _client.Containers.GetContainerLogsAsync(ContainerName(run.MesosId),
                new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Follow = true }, cancellationToken);
        }
        catch (DockerContainerNotFoundException)
        {
            yield break;
        }

        using (stream)
        {
            var buffer = new byte[16384];
            var decoder = Encoding.UTF8.GetDecoder();
            var chars = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
            while (true)
            {
                var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, cancellationToken);
                if (read.EOF)
                    yield break;
                var count = decoder.GetChars(buffer, 0, read.Count, chars, 0);
                yield return new string(chars, 0, count);
            }
        }
    }

    public async Task<(int ExitCode, string Output)> ExecAsync(TaskRun run, IReadOnlyList<string> command, CancellationToken cancellationToken = default)
    {
        var exec = await _client.Exec.CreateContainerExecAsync(ContainerName(run.MesosId), new ContainerExecCreateParameters
        {
            Cmd = command.ToList(),
            AttachStdout = true,
            AttachStderr = true,
        }, cancellationToken);
        string output;
        using (var stream = await _client.Exec.StartContainerExecAsync(exec.ID, new ContainerExecStartParameters(), cancellationToken))
        {
            var logs = await LogTail.ReadAsync(stream, 4096, cancellationToken);
            output = logs.Stdout + logs.Stderr;
        }

        var inspect = await _client.Exec.InspectContainerExecAsync(exec.ID, cancellationToken);
        return ((int)(inspect.ExitCode ?? -1), output);
    }

    public void Dispose()
    {
        // Registered under two service types, so the container may dispose it twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
            return;
        _stopping.Cancel();
        _client.Dispose();
        _stopping.Dispose();
    }

    private static bool IsUnreachable(Exception e) =>
        e is HttpRequestException or IOException or SocketException or TimeoutException
        || (e is TaskCanceledException && e.InnerException is TimeoutException);

    private static string Describe(DockerApiException e)
    {
        var body = e.ResponseBody?.Trim() ?? string.Empty;
        return $"{(int)e.StatusCode} {(body.Length > 500 ? body[..500] : body)}";
    }

    [LoggerMessage(2001, LogLevel.Warning, "Engine did not answer while watching {MesosId}; waiting again in {Seconds} s: {Message}")]
    private partial void LogEngineAway(string mesosId, double seconds, string message);

    [LoggerMessage(2002, LogLevel.Error, "Watching {MesosId} failed")]
    private partial void LogWatchFailed(string mesosId, Exception exception);
}
