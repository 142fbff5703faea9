using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Longshore.Core.Execution;
using Longshore.Core.Tasks;
using Microsoft.Extensions.Logging;

namespace Longshore.Backends.Kubernetes;

/// <summary>
/// Runs each task run as one Pod (<c>restartPolicy: Never</c>; Longshore owns retries) through the Kubernetes API. State
/// comes from one watch on the store's label selector, resumed from the last resourceVersion and listed afresh on
/// 410 Gone (as client-go's informers do), never from polling pods one by one. Only the leading instance watches,
/// launches and kills; any instance reads logs.
/// </summary>
public sealed partial class KubernetesBackend : IExecutionBackend, ITaskLogSource, ITaskExec, ILeaderBoundBackend, IDisposable
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    private readonly KubernetesBackendOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly k8s.Kubernetes _client;
    private readonly string _selector;
    private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();

    // Guarded by _gate: what the watch knows, by pod name.
    private readonly Dictionary<string, Tracked> _pods = new(StringComparer.Ordinal);
    private readonly HashSet<string> _killed = new(StringComparer.Ordinal);
    // When this process began each recent launch, by pod name: a reconciliation runs beside the scheduler's passes, so a
    // pod may belong to a run staged after the active runs were read; it is no orphan while this young.
    private readonly Dictionary<string, DateTimeOffset> _launchedAt = new(StringComparer.Ordinal);
    private static readonly TimeSpan YoungLaunch = TimeSpan.FromMinutes(1);
    private Task? _watch;
    private CancellationTokenSource? _session;
    private TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _requests;
    private int _disposed;

    public KubernetesBackend(KubernetesBackendOptions options, TimeProvider time, ILogger<KubernetesBackend> logger)
        : this(options, KubernetesConnection.Configure(options, Environment.GetEnvironmentVariable), time, logger)
    {
    }

    public KubernetesBackend(KubernetesBackendOptions options, KubernetesClientConfiguration configuration, TimeProvider time, ILogger<KubernetesBackend> logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
        _selector = PodSpecs.Selector(options.InstanceId);
        // Watches and followed logs stay open as long as pods run: each call carries its own timeout instead.
        configuration.HttpClientTimeout = System.Threading.Timeout.InfiniteTimeSpan;
        Server = new Uri(configuration.Host);
        _client = new k8s.Kubernetes(configuration, new CountingHandler(this));
    }

    public string Name => "kubernetes";

    /// <summary>The apiserver this backend talks to.</summary>
    public Uri Server { get; }

    public ChannelReader<StatusUpdate> Updates => _updates.Reader;

    /// <summary>Requests sent to the apiserver so far (a watch counts once, however long it stays open).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    public async Task CheckAvailableAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            using var timeout = Timeout(cancellationToken);
            await _client.Version.GetCodeAsync(timeout.Token);
        }
        catch (Exception e) when (IsUnreachable(e) || e is HttpOperationException)
        {
            throw new EngineUnavailableException($"the Kubernetes apiserver at {Server} does not answer: {Describe(e)}", e);
        }
    }

    /// <summary>
    /// Start-up check: the apiserver answers, and this identity may create, list, watch and delete pods, read their logs
    /// and exec into them in the namespace. Throws <see cref="EngineUnavailableException"/> with one line naming what is missing.
    /// </summary>
    public async Task VerifyAccessAsync(CancellationToken cancellationToken = default)
    {
        await CheckAvailableAsync(cancellationToken);
        (string Verb, string Resource, string? Sub)[] needs =
            [("create", "pods", null), ("list", "pods", null), ("watch", "pods", null), ("delete", "pods", null), ("get", "pods", "log"), ("create", "pods", "exec")];
        var missing = new List<string>();
        foreach (var (verb, resource, sub) in needs)
        {
            using var timeout = Timeout(cancellationToken);
            var review = await _client.AuthorizationV1.CreateSelfSubjectAccessReviewAsync(new V1SelfSubjectAccessReview
            {
                Spec = new V1SelfSubjectAccessReviewSpec
                {
                    ResourceAttributes = new V1ResourceAttributes { Verb = verb, Resource = resource, Subresource = sub, NamespaceProperty = _options.Namespace },
                },
            }, cancellationToken: timeout.Token);
            if (review.Status?.Allowed != true)
                missing.Add(sub is null ? $"{verb} {resource}" : $"{verb} {resource}/{sub}");
        }

        if (missing.Count > 0)
        {
            throw new EngineUnavailableException(
                $"the Kubernetes identity may not {string.Join(", ", missing)} in namespace '{_options.Namespace}' at {Server}; grant them with a Role (see deploy/kubernetes/rbac.yaml)");
        }
    }

    /// <summary>Starts watching (idempotent). Launch, kill and reconcile start it, so only the instance that leads watches.</summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_watch is not null)
                return;
            _session = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            var session = _session.Token;
            _watch = Task.Run(() => WatchAsync(session), CancellationToken.None);
        }
    }

    /// <summary>Leadership ended: the watch stops and what it knew is forgotten; the next leader lists afresh.</summary>
    public async Task StepDownAsync()
    {
        Task? watch;
        CancellationTokenSource? session;
        lock (_gate)
        {
            (watch, session) = (_watch, _session);
            (_watch, _session) = (null, null);
        }

        if (session is null)
            return;
        await session.CancelAsync();
        await watch!.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        session.Dispose();
        lock (_gate)
        {
            _pods.Clear();
            _killed.Clear();
            _synced = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        LogSteppedDown();
    }

    public async Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        Start();
        var name = PodSpecs.PodName(run.MesosId);
        lock (_gate)
        {
            if (!_pods.ContainsKey(name))
                _pods[name] = new Tracked(run.MesosId);
            _launchedAt[name] = _time.GetUtcNow();
        }

        try
        {
            var nodeLabels = PodSpecs.NeedsNodeLabels(run.Definition) ? await NodeLabelsAsync(cancellationToken) : null;
            var pod = PodSpecs.Build(run, _options, nodeLabels);
            using var timeout = Timeout(cancellationToken);
            await _client.CoreV1.CreateNamespacedPodAsync(pod, _options.Namespace, cancellationToken: timeout.Token);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
        {
            // The name is the run's: the pod exists from an earlier attempt at this same launch, and the watch reports it.
        }
        catch (HttpOperationException e) when ((int)e.Response.StatusCode is >= 400 and < 500 and not 429)
        {
            Forget(name);
            throw new LaunchException($"the apiserver refused the pod: {Describe(e)}", isTransient: false, e);
        }
        catch (Exception e) when (IsUnreachable(e) || e is HttpOperationException)
        {
            Forget(name);
            throw new LaunchException($"the apiserver at {Server} did not take the pod: {Describe(e)}", isTransient: true, e);
        }

        return new LaunchResult(name, "");
    }

    private void Forget(string name)
    {
        lock (_gate)
            _pods.Remove(name);
    }

    /// <summary>The values each node label has over the cluster's nodes now (for LIKE / UNLIKE).</summary>
    private async Task<IReadOnlyDictionary<string, IReadOnlySet<string>>> NodeLabelsAsync(CancellationToken cancellationToken)
    {
        using var timeout = Timeout(cancellationToken);
        var nodes = await _client.CoreV1.ListNodeAsync(cancellationToken: timeout.Token);
        return nodes.Items.SelectMany(n => n.Metadata.Labels ?? new Dictionary<string, string>())
            .GroupBy(pair => pair.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlySet<string>)g.Select(pair => pair.Value).ToHashSet(StringComparer.Ordinal), StringComparer.Ordinal);
    }

    public async Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default)
    {
        Start();
        var name = PodSpecs.PodName(run.MesosId);
        lock (_gate)
            _killed.Add(name);
        try
        {
            using var timeout = Timeout(cancellationToken);
            // The kubelet sends SIGTERM, then SIGKILL once the grace period is over.
            await _client.CoreV1.DeleteNamespacedPodAsync(name, _options.Namespace, gracePeriodSeconds: (int)Math.Ceiling(grace.TotalSeconds),
                cancellationToken: timeout.Token);
            LogKillSent(run.MesosId, name, grace.TotalSeconds);
            return true;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            lock (_gate)
                _killed.Remove(name);
            return false;
        }
    }

    public async Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default)
    {
        Start();
        Task synced;
        lock (_gate)
            synced = _synced.Task;
        try
        {
            await synced.WaitAsync(CallTimeout, _time, cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new EngineUnavailableException($"could not list the pods at {Server} yet", e);
        }

        V1PodList pods;
        using (var timeout = Timeout(cancellationToken))
            pods = await _client.CoreV1.ListNamespacedPodAsync(_options.Namespace, labelSelector: _selector, cancellationToken: timeout.Token);
        var byRun = new Dictionary<string, V1Pod>(StringComparer.Ordinal);
        foreach (var pod in pods.Items)
        {
            if (pod.Metadata.Annotations?.TryGetValue(PodSpecs.MesosIdAnnotation, out var id) == true)
                byRun[id] = pod;
        }

        var gone = new List<string>();
        foreach (var run in active)
        {
            if (!byRun.TryGetValue(run.MesosId, out var pod))
            {
                gone.Add(run.MesosId);
                continue;
            }

            // Adopt: the pod's state is reported again (a run that ended while nobody watched ends now), and a pull that
            // has failed for longer than allowed since the last event ends here.
            lock (_gate)
            {
                if (!_pods.ContainsKey(pod.Metadata.Name))
                    _pods[pod.Metadata.Name] = new Tracked(run.MesosId);
            }

            Observe(pod, deleted: false);
        }

        var activeIds = active.Select(run => run.MesosId).ToHashSet(StringComparer.Ordinal);
        var orphans = 0;
        // Launches of this process under way or just done, possibly for runs staged after the caller read the active runs:
        // deleting their pods would kill those runs. A real orphan is still there at the next reconciliation.
        var now = _time.GetUtcNow();
        HashSet<string> young;
        lock (_gate)
        {
            foreach (var (name, at) in _launchedAt.ToList())
            {
                if (now - at >= YoungLaunch)
                    _launchedAt.Remove(name);
            }

            young = _launchedAt.Keys.ToHashSet(StringComparer.Ordinal);
        }

        foreach (var (id, pod) in byRun)
        {
            if (activeIds.Contains(id) || young.Contains(pod.Metadata.Name))
                continue;
            await DeleteQuietlyAsync(pod.Metadata.Name, cancellationToken);
            orphans++;
        }

        return new ReconcileResult(gone, orphans);
    }

    /// <summary>Deletes the pod of a run whose end (and output) is recorded.</summary>
    public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) =>
        DeleteQuietlyAsync(PodSpecs.PodName(run.MesosId), cancellationToken);

    private async Task DeleteQuietlyAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = Timeout(cancellationToken);
            await _client.CoreV1.DeleteNamespacedPodAsync(name, _options.Namespace, gracePeriodSeconds: 0, cancellationToken: timeout.Token);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
    }

    // ------------------------------------------------------------------ the watch

    private async Task WatchAsync(CancellationToken cancellationToken)
    {
        string? version = null;
        var backoff = TimeSpan.FromMilliseconds(500);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (version is null)
                    version = await ListAsync(cancellationToken);
                var events = _client.CoreV1.WatchListNamespacedPodAsync(_options.Namespace, allowWatchBookmarks: true, labelSelector: _selector,
                    resourceVersion: version, timeoutSeconds: 300, cancellationToken: cancellationToken);
                await foreach (var (type, pod) in events)
                {
                    version = pod.Metadata?.ResourceVersion ?? version;
                    if (type is WatchEventType.Added or WatchEventType.Modified)
                        Observe(pod, deleted: false);
                    else if (type == WatchEventType.Deleted)
                        Observe(pod, deleted: true);
                }

                backoff = TimeSpan.FromMilliseconds(500);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (IsGone(e))
            {
                // The resourceVersion is older than the apiserver keeps: list again, and compare the list with what we knew.
                LogRelist();
                version = null;
            }
            catch (Exception e)
            {
                LogWatchFailed(e.Message, backoff.TotalSeconds);
                try
                {
                    await Task.Delay(backoff, _time, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                backoff = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(30).Ticks, backoff.Ticks * 2));
            }
        }
    }

    /// <summary>Lists the store's pods, reports each, and ends the runs of known pods the list no longer has (deleted unseen).</summary>
    private async Task<string> ListAsync(CancellationToken cancellationToken)
    {
        V1PodList list;
        using (var timeout = Timeout(cancellationToken))
            list = await _client.CoreV1.ListNamespacedPodAsync(_options.Namespace, labelSelector: _selector, cancellationToken: timeout.Token);
        var seen = list.Items.Select(pod => pod.Metadata.Name).ToHashSet(StringComparer.Ordinal);
        List<V1Pod> vanished;
        lock (_gate)
        {
            vanished = _pods.Where(pair => !seen.Contains(pair.Key) && pair.Value.Last is not null)
                .Select(pair => pair.Value.Last!).ToList();
        }

        foreach (var pod in list.Items)
            Observe(pod, deleted: false);
        foreach (var pod in vanished)
            Observe(pod, deleted: true);
        lock (_gate)
            _synced.TrySetResult();
        return list.Metadata.ResourceVersion;
    }

    /// <summary>Turns one observation of a pod into at most one status update: only a change of state or reason is reported.</summary>
    private void Observe(V1Pod pod, bool deleted)
    {
        var name = pod.Metadata.Name;
        string? mesosId = null;
        if (pod.Metadata.Annotations?.TryGetValue(PodSpecs.MesosIdAnnotation, out mesosId) != true || mesosId is null)
            return;
        PodReport report;
        DateTime? startedUnseen = null;
        lock (_gate)
        {
            if (!_pods.TryGetValue(name, out var tracked))
                _pods[name] = tracked = new Tracked(mesosId);
            if (deleted)
                _pods.Remove(name);
            else
                tracked.Last = pod;
            if (tracked.Ended)
            {
                if (deleted)
                    _killed.Remove(name);
                return;
            }

            report = PodStates.Map(pod, deleted, _killed.Contains(name), _time.GetUtcNow(), _options.ImagePullGrace);
            if (tracked.Reported is { } last && last.State == report.State && last.Reason == report.Reason)
                return;
            // A pod that ran and ended between two events: its run was running, and says when.
            if (report.State.IsTerminal() && tracked.Reported?.State != TaskState.Running)
                startedUnseen = pod.Status?.ContainerStatuses?.FirstOrDefault(c => c.Name == PodSpecs.ContainerName)?.State?.Terminated?.StartedAt;
            tracked.Reported = report;
            tracked.Ended = report.State.IsTerminal();
            if (deleted)
                _killed.Remove(name);
        }

        if (startedUnseen is { } started)
        {
            _updates.Writer.TryWrite(new StatusUpdate(mesosId, TaskState.Running, new DateTimeOffset(DateTime.SpecifyKind(started, DateTimeKind.Utc)))
            {
                ContainerId = name,
                Agent = report.Node,
            });
        }

        var update = new StatusUpdate(mesosId, report.State, _time.GetUtcNow())
        {
            ExitCode = report.ExitCode,
            Reason = report.Reason,
            ContainerId = name,
            Agent = report.Node,
        };
        // An end that the pod itself reached carries its output, read before the pod is deleted on release.
        if (report.State.IsTerminal() && !deleted)
            _ = Task.Run(() => EmitWithLogsAsync(update, name), CancellationToken.None);
        else
            _updates.Writer.TryWrite(update);
    }

    private async Task EmitWithLogsAsync(StatusUpdate update, string name)
    {
        try
        {
            using var timeout = Timeout(_stopping.Token);
            update = update with { Logs = await ReadLogsAsync(name, timeout.Token) };
        }
        catch (Exception e) when (e is HttpOperationException or OperationCanceledException || IsUnreachable(e))
        {
            LogLogsUnreadable(update.MesosId, Describe(e));
        }

        _updates.Writer.TryWrite(update);
    }

    // ------------------------------------------------------------------ logs and exec

    public async Task<TaskLogs?> ReadLogsAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        try
        {
            using var timeout = Timeout(cancellationToken);
            return await ReadLogsAsync(PodSpecs.PodName(run.MesosId), timeout.Token);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest)
        {
            // Gone, or its container has not started yet.
            return null;
        }
    }

    private async Task<TaskLogs> ReadLogsAsync(string name, CancellationToken cancellationToken)
    {
        await using var stream = await _client.CoreV1.ReadNamespacedPodLogAsync(name, _options.Namespace, container: PodSpecs.ContainerName,
            cancellationToken: cancellationToken);
        return await LogTail.ReadAsync(stream, _options.LogCapBytes, cancellationToken);
    }

    /// <summary>Streams the pod's log as it is written (stdout and stderr interleaved, as the kubelet keeps them) until it ends.</summary>
    public IAsyncEnumerable<string>? FollowLogs(TaskRun run, CancellationToken cancellationToken = default) => FollowAsync(run, cancellationToken);

    private async IAsyncEnumerable<string> FollowAsync(TaskRun run, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var name = PodSpecs.PodName(run.MesosId);
        Stream? stream = null;
        // A pod whose container has not started yet has no log to follow: wait for it (bounded), as `kubectl logs -f` does not.
        for (var attempt = 0; stream is null && attempt < 240; attempt++)
        {
            try
            {
                stream = await _client.CoreV1.ReadNamespacedPodLogAsync(name, _options.Namespace, container: PodSpecs.ContainerName, follow: true,
                    cancellationToken: cancellationToken);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
            {
                yield break;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.BadRequest)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), _time, cancellationToken);
            }
        }

        if (stream is null)
            yield break;
        await using (stream)
        {
            var buffer = new byte[16384];
            var decoder = Encoding.UTF8.GetDecoder();
            var chars = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            {
                var count = decoder.GetChars(buffer, 0, read, chars, 0);
                if (count > 0)
                    yield return new string(chars, 0, count);
            }
        }
    }

    public async Task<(int ExitCode, string Output)> ExecAsync(TaskRun run, IReadOnlyList<string> command, CancellationToken cancellationToken = default)
    {
        var output = new StringBuilder();
        var exitCode = await _client.NamespacedPodExecAsync(PodSpecs.PodName(run.MesosId), _options.Namespace, PodSpecs.ContainerName, command, false,
            async (_, stdout, stderr) =>
            {
                var texts = await Task.WhenAll(ReadCappedAsync(stdout, cancellationToken), ReadCappedAsync(stderr, cancellationToken));
                output.Append(texts[0]).Append(texts[1]);
            }, cancellationToken);
        return (exitCode, output.ToString());
    }

    private static async Task<string> ReadCappedAsync(Stream stream, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream);
        var text = await reader.ReadToEndAsync(cancellationToken);
        return text.Length > 4096 ? text[^4096..] : text;
    }

    // ------------------------------------------------------------------ plumbing

    private static CancellationTokenSource Timeout(CancellationToken cancellationToken)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        source.CancelAfter(CallTimeout);
        return source;
    }

    private static bool IsGone(Exception e) =>
        e is HttpOperationException { Response.StatusCode: HttpStatusCode.Gone } || (e is KubernetesException k && k.Status?.Code == 410);

    private static bool IsUnreachable(Exception e) =>
        e is HttpRequestException or IOException or TimeoutException || (e is TaskCanceledException && e.InnerException is TimeoutException);

    private static string Describe(Exception e) => e switch
    {
        HttpOperationException h => $"{(int)h.Response.StatusCode} {Truncate(h.Response.Content)}",
        _ => e.GetBaseException().Message,
    };

    private static string Truncate(string? text)
    {
        var body = text?.Trim() ?? "";
        return body.Length > 500 ? body[..500] : body;
    }

    public void Dispose()
    {
        // Registered under two service types, so the container may dispose it twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
            return;
        _stopping.Cancel();
        _watch?.Wait(TimeSpan.FromSeconds(5));
        _client.Dispose();
        _stopping.Dispose();
    }

    /// <summary>A pod the watch has seen or this instance created, and what was last reported for its run.</summary>
    private sealed class Tracked(string mesosId)
    {
        public string MesosId { get; } = mesosId;

        public V1Pod? Last { get; set; }

        public PodReport? Reported { get; set; }

        public bool Ended { get; set; }
    }

    private sealed class CountingHandler(KubernetesBackend backend) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref backend._requests);
            return base.SendAsync(request, cancellationToken);
        }
    }

    [LoggerMessage(2201, LogLevel.Warning, "Pod watch failed, watching again in {Seconds} s: {Message}")]
    private partial void LogWatchFailed(string message, double seconds);

    [LoggerMessage(2202, LogLevel.Information, "Pod watch resourceVersion expired (410 Gone): listing again")]
    private partial void LogRelist();

    [LoggerMessage(2203, LogLevel.Information, "Asked Kubernetes to delete pod {Pod} of {MesosId} (grace {Seconds} s)")]
    private partial void LogKillSent(string mesosId, string pod, double seconds);

    [LoggerMessage(2204, LogLevel.Warning, "Could not read the log of {MesosId} before its pod goes: {Message}")]
    private partial void LogLogsUnreadable(string mesosId, string message);

    [LoggerMessage(2205, LogLevel.Information, "Stopped watching pods: this instance no longer schedules")]
    private partial void LogSteppedDown();
}
