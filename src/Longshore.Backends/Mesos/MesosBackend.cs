using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Longshore.Core.Execution;
using Longshore.Core.Placement;
using Longshore.Core.Tasks;
using Microsoft.Extensions.Logging;

namespace Longshore.Backends.Mesos;

/// <summary>
/// Runs task runs as Mesos tasks through the v1 scheduler HTTP API. A launch waits in the pending set until an offer
/// fits it (<see cref="OfferMatcher"/>); the launch completes once the master accepted the ACCEPT that carries it.
/// Every status update goes to <see cref="Updates"/> and is acknowledged after the scheduler applied it.
/// </summary>
public sealed partial class MesosBackend : IExecutionBackend, ITaskLogSource, IDeferredLaunch, ILeaderBoundBackend, IAsyncDisposable
{
    private static readonly TimeSpan SubscribeWait = TimeSpan.FromSeconds(10);

    private readonly MesosBackendOptions _options;
    private readonly MesosConnection _connection;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<StatusUpdate> _updates = Channel.CreateUnbounded<StatusUpdate>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _cycle = new(1, 1);
    private readonly SemaphoreSlim _offerSwitch = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();

    // Guarded by _gate.
    private readonly Dictionary<string, Pending> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Pending> _inFlight = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tracked> _tasks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, MesosOffer> _offers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AgentInfo> _agentsById = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AgentInfo> _agentsByHost = new(StringComparer.Ordinal);
    private readonly HashSet<string> _ending = new(StringComparer.Ordinal);
    private HashSet<string>? _lastActive;
    private long _pendingSeq;
    private bool _suppressed;
    private DateTimeOffset _lastOffers;
    private int _reviveQueued;
    private volatile bool _reconciledOnce;
    private volatile string? _fault;

    private readonly IFrameworkIdKeeper _frameworkIds;
    private volatile string? _frameworkId;
    private TaskCompletionSource _subscribed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loop;
    private CancellationTokenSource? _session;

    /// <param name="frameworkIds">Where the framework id is kept; by default the options' <c>FrameworkIdFile</c>.</param>
    public MesosBackend(MesosBackendOptions options, TimeProvider time, ILogger<MesosBackend> logger, HttpMessageHandler? handler = null,
        IFrameworkIdKeeper? frameworkIds = null)
    {
        _options = options;
        _time = time;
        _logger = logger;
        _connection = new MesosConnection(options, handler);
        _frameworkIds = frameworkIds ?? new FileFrameworkIdKeeper(options.FrameworkIdFile);
    }

    public string Name => "mesos";

    public ChannelReader<StatusUpdate> Updates => _updates.Reader;

    /// <summary>The framework id the master gave (or the one kept from an earlier run).</summary>
    public string? FrameworkId => _frameworkId;

    /// <summary>The master that holds the current subscription.</summary>
    public Uri? Leader => _connection.Leader;

    /// <summary>
    /// Why the master refuses this framework (credentials or role ACLs), as one line naming the setting; null while it
    /// does not. Subscribing goes on with backoff, so a fix on the master is picked up without a restart.
    /// </summary>
    public string? Fault => _fault;

    /// <summary>Runs waiting for an offer.</summary>
    public int PendingCount
    {
        get
        {
            lock (_gate)
                return _pending.Count;
        }
    }

    /// <summary>
    /// Starts subscribing (idempotent). The scheduler's calls (launch, kill, reconcile) start it, so only the instance
    /// that leads subscribes: a second subscriber with the same framework id would take the framework over.
    /// </summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_loop is not null)
                return;
            _session = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            var session = _session.Token;
            _loop = Task.Run(() => RunAsync(session), CancellationToken.None);
        }
    }

    /// <summary>
    /// Leadership ended: closes the subscription (without TEARDOWN, so the framework and its tasks live on for the next
    /// leader) and forgets what this instance tracked. A later <see cref="Start"/> subscribes afresh, reading the
    /// framework id again since the next leader may have been given a new one.
    /// </summary>
    public async Task StepDownAsync()
    {
        Task? loop;
        CancellationTokenSource? session;
        lock (_gate)
        {
            (loop, session) = (_loop, _session);
            (_loop, _session) = (null, null);
        }

        if (session is null)
            return;
        await session.CancelAsync();
        await loop!.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        session.Dispose();
        lock (_gate)
        {
            foreach (var pending in _pending.Values.Concat(_inFlight.Values))
                pending.Launched.TrySetCanceled();
            _pending.Clear();
            _inFlight.Clear();
            _tasks.Clear();
            _lastActive = null;
            _suppressed = false;
        }

        _reconciledOnce = false;
        _frameworkId = null;
        LogSteppedDown();
    }

    /// <summary>Asks each master for its version: a probe, not a subscription (any instance may answer health checks).</summary>
    public async Task CheckAvailableAsync(CancellationToken cancellationToken = default)
    {
        if (_fault is { } fault)
            throw new EngineUnavailableException(fault);
        var failures = new List<string>();
        foreach (var master in _options.Masters)
        {
            try
            {
                var (status, _) = await _connection.GetFromMasterAsync(master, "version", cancellationToken);
                if (status == HttpStatusCode.OK)
                    return;
                failures.Add($"{master}: {(int)status}");
            }
            catch (HttpRequestException e)
            {
                failures.Add($"{master}: {e.Message}");
            }
        }

        throw new EngineUnavailableException("no Mesos master answers: " + string.Join("; ", failures));
    }

    /// <summary>
    /// Start-up check that the master accepts this framework. With <paramref name="subscribe"/> (the instance will lead
    /// at once) it subscribes and waits for SUBSCRIBED or a refusal, so a refused role is caught too; otherwise it only
    /// checks the credentials, since subscribing would take the framework over from the leading instance. Throws
    /// <see cref="MesosAccessException"/> when refused; returns when no master answers within <paramref name="wait"/>
    /// (that shows in /healthz).
    /// </summary>
    public async Task VerifyAccessAsync(bool subscribe, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        if (!subscribe)
        {
            await _connection.CheckCredentialsAsync(cancellationToken);
            return;
        }

        Start();
        var deadline = _time.GetUtcNow() + wait;
        while (_time.GetUtcNow() < deadline)
        {
            if (_fault is { } fault)
                throw new MesosAccessException(fault);
            lock (_gate)
            {
                if (_subscribed.Task.IsCompleted)
                    return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), _time, cancellationToken);
        }
    }

    public async Task<LaunchResult> LaunchAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        Start();
        Pending pending;
        bool revive;
        lock (_gate)
        {
            if (_tasks.TryGetValue(run.MesosId, out var known))
                return new LaunchResult(run.MesosId, known.Hostname ?? known.AgentId ?? "");
            if (!_pending.TryGetValue(run.MesosId, out pending!))
            {
                pending = new Pending(run, _pendingSeq++);
                _pending.Add(run.MesosId, pending);
            }

            revive = _suppressed || _offers.Count == 0;
        }

        // One REVIVE serves a whole batch of launches handed over together.
        if (revive)
            QueueRevive();
        else
            _ = Task.Run(() => MatchAsync(_stopping.Token), CancellationToken.None);
        return await pending.Launched.Task.WaitAsync(cancellationToken);
    }

    public bool TryWithdraw(string mesosId)
    {
        Pending? pending;
        lock (_gate)
        {
            if (!_pending.Remove(mesosId, out pending))
                return false;
        }

        pending.Launched.TrySetException(new LaunchException("killed while waiting for an offer; nothing was started", isTransient: false));
        return true;
    }

    public async Task<bool> KillAsync(TaskRun run, TimeSpan grace, CancellationToken cancellationToken = default)
    {
        Start();
        if (TryWithdraw(run.MesosId))
            return true;
        string? agentId;
        lock (_gate)
            agentId = _tasks.TryGetValue(run.MesosId, out var tracked) ? tracked.AgentId : null;
        var frameworkId = await SubscribedAsync(cancellationToken);
        // The master answers a kill of a task it does not know with a reconciliation update (LOST / GONE / UNKNOWN),
        // which ends the run through the normal path.
        await _connection.CallAsync(MesosCalls.Kill(frameworkId, run.MesosId, agentId, grace), cancellationToken);
        LogKillSent(run.MesosId, grace.TotalSeconds);
        return true;
    }

    public async Task<ReconcileResult> ReconcileAsync(IReadOnlyCollection<TaskRun> active, CancellationToken cancellationToken = default)
    {
        Start();
        var frameworkId = await SubscribedAsync(cancellationToken);
        List<(string, string?)> explicitTasks = [];
        lock (_gate)
        {
            _lastActive = active.Select(run => run.MesosId).ToHashSet(StringComparer.Ordinal);
            foreach (var run in active)
            {
                // A run still waiting for an offer (or in an ACCEPT on its way) is not on the cluster yet: asking about
                // it would end it as unknown while its launch is still coming.
                if (_pending.ContainsKey(run.MesosId) || _inFlight.ContainsKey(run.MesosId))
                    continue;
                // After the first reconciliation (made before the scheduler launches anything), a TASK_STAGING run this
                // backend never saw is one whose launch is being handed over right now: asking the master about it
                // would end it TASK_LOST while its launch still comes, and the task would run for an ended run.
                if (_reconciledOnce && run.State == TaskState.Staging && !_tasks.ContainsKey(run.MesosId))
                    continue;
                if (!_tasks.TryGetValue(run.MesosId, out var tracked))
                {
                    var agent = run.Agent is not null && _agentsByHost.TryGetValue(run.Agent, out var a) ? a : null;
                    tracked = new Tracked(run.FamilyId, agent?.Id, run.Agent);
                    _tasks[run.MesosId] = tracked;
                }

                explicitTasks.Add((run.MesosId, tracked.AgentId));
            }
        }

        await ReconcileTasksAsync(frameworkId, explicitTasks, cancellationToken);
        _reconciledOnce = true;
        return new ReconcileResult([], 0);
    }

    /// <summary>Mesos agents collect sandboxes themselves: nothing to free.</summary>
    public Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public async Task<TaskLogs?> ReadLogsAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        var (agentUrl, frameworkId) = await LocateAsync(run, cancellationToken);
        if (agentUrl is null || frameworkId is null)
            return null;
        return await ReadSandboxAsync(agentUrl, frameworkId, run.MesosId, cancellationToken);
    }

    /// <summary>
    /// Where a run's sandbox is. The leader knows from its subscription; an instance that does not lead (and so is not
    /// subscribed) asks the masters' <c>/master/slaves</c> for the agent of the run's host and reads the framework id
    /// from where the leader keeps it.
    /// </summary>
    private async Task<(Uri? Agent, string? FrameworkId)> LocateAsync(TaskRun run, CancellationToken cancellationToken)
    {
        var agent = AgentUrlOf(run);
        var frameworkId = _frameworkId;
        if ((agent is not null && frameworkId is not null) || run.Agent is null)
            return (agent, frameworkId);
        frameworkId ??= await _frameworkIds.LoadAsync(cancellationToken);
        agent ??= await AgentFromMastersAsync(run.Agent, cancellationToken);
        return (agent, frameworkId);
    }

    private async Task<Uri?> AgentFromMastersAsync(string hostname, CancellationToken cancellationToken)
    {
        // A master that does not lead answers 307: try the next.
        foreach (var master in _options.Masters)
        {
            try
            {
                var (status, body) = await _connection.GetFromMasterAsync(master, "master/slaves", cancellationToken);
                if (status == HttpStatusCode.OK)
                    return MesosAgents.UrlOf(JsonDocument.Parse(body).RootElement, hostname);
            }
            catch (HttpRequestException)
            {
            }
        }

        return null;
    }

    private async Task<TaskLogs?> ReadSandboxAsync(Uri agentUrl, string frameworkId, string taskId, CancellationToken cancellationToken)
    {
        var (stdout, cutOut) = await ReadSandboxFileAsync(agentUrl, frameworkId, taskId, "stdout", cancellationToken);
        var (stderr, cutErr) = await ReadSandboxFileAsync(agentUrl, frameworkId, taskId, "stderr", cancellationToken);
        return stdout is null && stderr is null ? null : new TaskLogs(stdout ?? "", stderr ?? "", cutOut || cutErr);
    }

    /// <summary>
    /// Polls the sandbox's stdout through the agent files API (once a second) from where it is now, until the run's end
    /// has been seen; null when the backend does not know where the run is.
    /// </summary>
    public IAsyncEnumerable<string>? FollowLogs(TaskRun run, CancellationToken cancellationToken = default)
    {
        var agentUrl = AgentUrlOf(run);
        if (agentUrl is not null && _frameworkId is { } frameworkId)
            return FollowAsync(agentUrl, frameworkId, run.MesosId, cancellationToken);
        // Not subscribed (an instance that does not lead) sees no end to wait for: the output so far, then the end.
        return run.Agent is null ? null : OutputSoFarAsync(run, cancellationToken);
    }

    private async IAsyncEnumerable<string> OutputSoFarAsync(TaskRun run, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (await ReadLogsAsync(run, cancellationToken) is { Stdout.Length: > 0 } logs)
            yield return logs.Stdout;
    }

    private async IAsyncEnumerable<string> FollowAsync(Uri agentUrl, string frameworkId, string taskId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var path = Uri.EscapeDataString($"/frameworks/{frameworkId}/executors/{taskId}/runs/latest/stdout");
        long offset = 0;
        while (true)
        {
            bool ended;
            lock (_gate)
                ended = !_tasks.ContainsKey(taskId);
            var (status, body) = await _connection.GetAsync(
                new Uri(agentUrl, string.Create(CultureInfo.InvariantCulture, $"files/read?path={path}&offset={offset}&length=65536")), cancellationToken);
            if (status == HttpStatusCode.OK)
            {
                var data = JsonDocument.Parse(body).RootElement.GetProperty("data").GetString() ?? "";
                if (data.Length > 0)
                {
                    offset += System.Text.Encoding.UTF8.GetByteCount(data);
                    yield return data;
                    continue;
                }
            }

            // Read once more after the end was seen, so the last output is not lost.
            if (ended)
                yield break;
            await Task.Delay(TimeSpan.FromSeconds(1), _time, cancellationToken);
        }
    }

    private Uri? AgentUrlOf(TaskRun run)
    {
        lock (_gate)
        {
            if (run.Agent is not null && _agentsByHost.TryGetValue(run.Agent, out var agent) && agent.Url is not null)
                return agent.Url;
            return _tasks.TryGetValue(run.MesosId, out var tracked) && tracked.AgentId is not null && _agentsById.TryGetValue(tracked.AgentId, out var byId)
                ? byId.Url
                : null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (_loop is not null)
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        lock (_gate)
        {
            foreach (var pending in _pending.Values)
                pending.Launched.TrySetCanceled();
            _pending.Clear();
        }

        _connection.Dispose();
        _stopping.Dispose();
        _cycle.Dispose();
        _offerSwitch.Dispose();
    }

    private async Task<(string? Text, bool Truncated)> ReadSandboxFileAsync(Uri agent, string frameworkId, string taskId, string file, CancellationToken cancellationToken)
    {
        const int cap = 1024 * 1024;
        // The executor id of a command or docker task is the task id; runs/latest names its last run.
        var path = $"/frameworks/{frameworkId}/executors/{taskId}/runs/latest/{file}";
        var (status, probe) = await _connection.GetAsync(new Uri(agent, "files/read?path=" + Uri.EscapeDataString(path) + "&offset=-1"), cancellationToken);
        if (status != HttpStatusCode.OK)
            return (null, false);
        var size = JsonDocument.Parse(probe).RootElement.GetProperty("offset").GetInt64();
        var offset = Math.Max(0, size - cap);
        var (readStatus, body) = await _connection.GetAsync(
            new Uri(agent, string.Create(CultureInfo.InvariantCulture, $"files/read?path={Uri.EscapeDataString(path)}&offset={offset}&length={cap}")), cancellationToken);
        if (readStatus != HttpStatusCode.OK)
            return (null, false);
        return (JsonDocument.Parse(body).RootElement.GetProperty("data").GetString(), offset > 0);
    }

    private async Task<string> SubscribedAsync(CancellationToken cancellationToken)
    {
        Task subscribed;
        lock (_gate)
            subscribed = _subscribed.Task;
        try
        {
            await subscribed.WaitAsync(SubscribeWait, _time, cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new EngineUnavailableException($"not subscribed to a Mesos master ({string.Join(", ", _options.Masters)}) yet", e);
        }

        return _frameworkId!;
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = TimeSpan.FromMilliseconds(500);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                _frameworkId ??= await _frameworkIds.LoadAsync(cancellationToken);
                if (await StreamAsync(cancellationToken))
                    backoff = TimeSpan.FromMilliseconds(500);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (MesosAccessException e)
            {
                _fault = e.Message;
                LogAccessRefused(e.Message, backoff.TotalSeconds);
            }
            catch (Exception e)
            {
                LogStreamFailed(e.Message, backoff.TotalSeconds);
            }
            finally
            {
                Disconnected();
            }

            try
            {
                await Task.Delay(backoff, _time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            backoff = TimeSpan.FromTicks(Math.Min(_options.ReconnectBackoffCap.Ticks, backoff.Ticks * 2));
        }
    }

    /// <summary>One subscription: returns true when it got as far as SUBSCRIBED.</summary>
    private async Task<bool> StreamAsync(CancellationToken cancellationToken)
    {
        using var response = await _connection.SubscribeAsync(MesosCalls.Subscribe(_options, _frameworkId), cancellationToken);
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var reader = new RecordIoReader(body);
        var silence = TimeSpan.FromSeconds(30);
        var subscribed = false;
        using var heartbeat = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, heartbeat.Token);
        while (true)
        {
            heartbeat.CancelAfter(silence);
            byte[]? record;
            try
            {
                record = await reader.ReadAsync(linked.Token);
            }
            catch (OperationCanceledException) when (heartbeat.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                LogHeartbeatsMissed(silence.TotalSeconds);
                return subscribed;
            }

            if (record is null)
            {
                LogStreamEnded();
                return subscribed;
            }

            var evt = MesosEvent.Parse(record);
            switch (evt)
            {
                case SubscribedEvent s:
                    subscribed = true;
                    silence = TimeSpan.FromSeconds(s.HeartbeatIntervalSeconds * _options.MissedHeartbeats);
                    await OnSubscribedAsync(s, cancellationToken);
                    break;
                case OffersEvent offers:
                    OnOffers(offers);
                    _ = Task.Run(() => MatchAsync(cancellationToken), CancellationToken.None);
                    break;
                case RescindEvent rescind:
                    lock (_gate)
                        _offers.Remove(rescind.OfferId);
                    break;
                case UpdateEvent update:
                    OnUpdate(update.Status);
                    break;
                case HeartbeatEvent:
                    ReviveIfStarved();
                    break;
                case ErrorEvent error when error.Message.StartsWith("Not authorized", StringComparison.Ordinal):
                    // The ACLs refuse the framework's roles (recorded in 12-auth): nothing was registered, and the
                    // master ends the stream.
                    throw new MesosAccessException($"mesos-role: the Mesos master {_connection.Leader} refuses principal '{_options.Principal ?? "(none)"}' "
                        + $"with roles {string.Join(',', _options.Roles)}: {error.Message}");
                case ErrorEvent error:
                    LogMasterError(error.Message);
                    if (error.Message.Contains("removed", StringComparison.OrdinalIgnoreCase))
                    {
                        _frameworkId = null;
                        await _frameworkIds.SaveAsync(null, cancellationToken);
                    }

                    break;
            }
        }
    }

    private async Task OnSubscribedAsync(SubscribedEvent subscribed, CancellationToken cancellationToken)
    {
        var known = _frameworkId;
        _fault = null;
        _frameworkId = subscribed.FrameworkId;
        if (known != subscribed.FrameworkId)
            await _frameworkIds.SaveAsync(subscribed.FrameworkId, cancellationToken);
        List<(string, string?)> tasks;
        bool pending;
        lock (_gate)
        {
            // A new subscription starts unsuppressed with no offers held.
            _suppressed = false;
            _offers.Clear();
            tasks = _tasks.Select(pair => (pair.Key, pair.Value.AgentId)).ToList();
            pending = _pending.Count > 0;
            _subscribed.TrySetResult();
        }

        LogSubscribed(subscribed.FrameworkId, _connection.Leader?.ToString() ?? "?", subscribed.HeartbeatIntervalSeconds);
        // After a failover or a dropped stream, learn what happened meanwhile: tasks known here explicitly, then
        // everything the master tracks (implicit). Done in the background so the stream keeps being read.
        _ = Task.Run(async () =>
        {
            try
            {
                await ReconcileTasksAsync(subscribed.FrameworkId, tasks, cancellationToken);
                if (!pending)
                    await SuppressAsync(cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogCallFailed("RECONCILE", e.Message);
            }
        }, CancellationToken.None);
    }

    private async Task ReconcileTasksAsync(string frameworkId, List<(string, string?)> explicitTasks, CancellationToken cancellationToken)
    {
        if (explicitTasks.Count > 0)
            await _connection.CallAsync(MesosCalls.Reconcile(frameworkId, explicitTasks), cancellationToken);
        await _connection.CallAsync(MesosCalls.Reconcile(frameworkId, []), cancellationToken);
        LogReconcileSent(explicitTasks.Count);
    }

    private void Disconnected()
    {
        lock (_gate)
        {
            _offers.Clear();
            if (_subscribed.Task.IsCompleted)
                _subscribed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    private void OnOffers(OffersEvent offers)
    {
        lock (_gate)
        {
            _lastOffers = _time.GetUtcNow();
            foreach (var offer in offers.Offers)
            {
                _offers[offer.Id] = offer;
                var agent = new AgentInfo(offer.AgentId, offer.Hostname, offer.AgentUrl, offer.Attributes);
                _agentsById[offer.AgentId] = agent;
                _agentsByHost[offer.Hostname] = agent;
            }
        }
    }

    /// <summary>One offer cycle: plan with the held offers, ACCEPT per agent, DECLINE the rest, SUPPRESS when idle.</summary>
    private async Task MatchAsync(CancellationToken cancellationToken)
    {
        await _cycle.WaitAsync(cancellationToken);
        try
        {
            var frameworkId = _frameworkId;
            if (frameworkId is null)
                return;
            OfferPlan plan;
            Dictionary<string, MesosOffer> held;
            bool suppress;
            lock (_gate)
            {
                if (_offers.Count == 0)
                    return;
                // One ACCEPT takes offers of one agent, and a task's resources come from one role: group by both.
                var agents = _offers.Values.GroupBy(o => (o.AgentId, o.Role)).Select(g =>
                {
                    var first = g.First();
                    return new AgentOffer(first.AgentId, first.Hostname, g.Select(o => o.Id).ToArray(), g.Sum(o => o.Cpus), g.Sum(o => o.Mem), first.Attributes)
                    {
                        Ports = g.SelectMany(o => o.Ports).ToArray(),
                        Role = first.Role,
                    };
                }).ToArray();
                var pending = _pending.Values.OrderBy(p => p.Seq).Select(p => p.Run).ToArray();
                var placements = _tasks.Values.Select(t =>
                {
                    var agent = t.AgentId is not null && _agentsById.TryGetValue(t.AgentId, out var a) ? a
                        : t.Hostname is not null && _agentsByHost.TryGetValue(t.Hostname, out var h) ? h : null;
                    return new RunPlacement(t.FamilyId, agent?.Hostname ?? t.Hostname ?? "", agent?.Attributes ?? EmptyAttributes);
                }).ToArray();
                plan = OfferMatcher.Plan(agents, pending, placements);
                held = new Dictionary<string, MesosOffer>(_offers, StringComparer.Ordinal);
                foreach (var launch in plan.Launches)
                {
                    foreach (var run in launch.Runs)
                    {
                        _pending.Remove(run.MesosId, out var waiting);
                        _inFlight[run.MesosId] = waiting!;
                    }
                }

                _offers.Clear();
                suppress = _pending.Count == 0 && !_suppressed;
            }

            await Task.WhenAll(plan.Launches.Select(launch => AcceptAsync(frameworkId, launch,
                new OfferedResources(launch.Agent.OfferIds.SelectMany(id => held.TryGetValue(id, out var offer) ? offer.Scalars : [])), cancellationToken)));
            if (plan.Unused.Count > 0)
                await CallQuietlyAsync("DECLINE", MesosCalls.Decline(frameworkId, plan.Unused.SelectMany(a => a.OfferIds), _options.RefuseSeconds), cancellationToken);
            if (suppress)
                await SuppressAsync(cancellationToken);
        }
        finally
        {
            _cycle.Release();
        }
    }

    private async Task AcceptAsync(string frameworkId, AgentLaunch launch, OfferedResources offered, CancellationToken cancellationToken)
    {
        var call = MesosCalls.Accept(frameworkId, launch.Agent.OfferIds, launch.Runs.Select(run =>
            MesosCalls.TaskInfo(run, launch.Agent.AgentId, launch.Ports.GetValueOrDefault(run.MesosId) ?? [], _options.Roles.Count > 1 ? launch.Agent.Role : null,
                offered)).ToArray(), _options.RefuseSeconds);
        Exception? failure = null;
        var ambiguous = false;
        try
        {
            await _connection.CallAsync(call, cancellationToken);
        }
        catch (MesosCallException e)
        {
            failure = e;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or InvalidOperationException)
        {
            // The master may or may not have taken it: count the runs as launched, and ask the master about them. If it
            // never saw them, reconciliation answers TASK_LOST and the runs are retried; launching again could run twice.
            LogAcceptAmbiguous(launch.Runs.Count, e.Message);
            ambiguous = true;
        }

        var launched = new List<(Pending, LaunchResult)>();
        lock (_gate)
        {
            foreach (var run in launch.Runs)
            {
                if (!_inFlight.Remove(run.MesosId, out var waiting))
                    continue;
                if (failure is not null)
                {
                    // Refused as a whole (stream changed, not subscribed): nothing started, so the run waits for the next offer.
                    _pending[run.MesosId] = waiting;
                    continue;
                }

                _tasks[run.MesosId] = new Tracked(run.FamilyId, launch.Agent.AgentId, launch.Agent.Hostname);
                launched.Add((waiting, new LaunchResult(run.MesosId, launch.Agent.Hostname)));
            }

        }

        if (failure is not null)
        {
            LogAcceptRefused(launch.Runs.Count, failure.Message);
            QueueRevive();
            return;
        }

        LogAccepted(launch.Runs.Count, launch.Agent.Hostname, launch.Agent.OfferIds.Count);
        foreach (var (waiting, result) in launched)
            waiting.Launched.TrySetResult(result);
        if (ambiguous)
        {
            await CallQuietlyAsync("RECONCILE", MesosCalls.Reconcile(frameworkId, launch.Runs.Select(run => (run.MesosId, (string?)launch.Agent.AgentId))),
                CancellationToken.None);
        }
    }

    private void OnUpdate(MesosTaskStatus status)
    {
        var frameworkId = _frameworkId!;
        if (!TaskStates.TryParse(status.State, out var state))
            state = TaskState.Unknown;
        string? hostname;
        Uri? agentUrl;
        var orphan = false;
        lock (_gate)
        {
            // The agent's own end of this task is being given its output: a reconciliation answer with the same end may
            // overtake it on the way to the scheduler and would end the run without exit code or output. Drop it; the
            // agent's update (re-sent until acknowledged) carries the end.
            if (state.IsTerminal() && status.Source == "SOURCE_MASTER" && _ending.Contains(status.TaskId))
                return;
            _tasks.TryGetValue(status.TaskId, out var tracked);
            if (tracked is not null && status.AgentId is not null && tracked.AgentId is null)
                _tasks[status.TaskId] = tracked = tracked with { AgentId = status.AgentId };
            var agent = status.AgentId is not null && _agentsById.TryGetValue(status.AgentId, out var known) ? known : null;
            hostname = agent?.Hostname ?? tracked?.Hostname;
            agentUrl = agent?.Url;
            if (state.IsTerminal())
                _tasks.Remove(status.TaskId);
            else if (tracked is null && _lastActive is not null && !_lastActive.Contains(status.TaskId) && !_inFlight.ContainsKey(status.TaskId)
                && !_pending.ContainsKey(status.TaskId) && status.Reason == "REASON_RECONCILIATION")
                orphan = true;
        }

        if (orphan)
        {
            // Running for no run of this store (its end was recorded while the stream was away): stop it.
            LogOrphan(status.TaskId);
            _ = CallQuietlyAsync("KILL", MesosCalls.Kill(frameworkId, status.TaskId, status.AgentId, TimeSpan.FromSeconds(10)), _stopping.Token);
        }

        var at = status.Timestamp is { } ts ? DateTimeOffset.FromUnixTimeMilliseconds((long)(ts * 1000)) : _time.GetUtcNow();
        var reason = string.Join("; ", new[] { status.Message, status.Reason }.Where(s => !string.IsNullOrEmpty(s)));
        var update = new StatusUpdate(status.TaskId, state, at)
        {
            Reason = reason.Length == 0 ? null : reason,
            ExitCode = ExitCode(status.Message),
            ContainerId = status.ContainerId,
            Agent = hostname,
        };
        if (status.Uuid is { } uuid && status.AgentId is { } agentId)
            update = update with { Applied = ct => AcknowledgeAsync(frameworkId, agentId, status.TaskId, uuid, ct) };
        if (state.IsTerminal() && status.Source != "SOURCE_MASTER" && agentUrl is not null)
        {
            lock (_gate)
                _ending.Add(status.TaskId);
            _ = Task.Run(() => EmitWithLogsAsync(update, agentUrl, frameworkId), CancellationToken.None);
        }
        else
            _updates.Writer.TryWrite(update);
    }

    /// <summary>
    /// A run's end carries its output, read from the agent's sandbox, so the store keeps it after the agent collects
    /// the sandbox. The end is the run's last update, so emitting it a little later keeps the run's order.
    /// </summary>
    private async Task EmitWithLogsAsync(StatusUpdate update, Uri agentUrl, string frameworkId)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            if (await ReadSandboxAsync(agentUrl, frameworkId, update.MesosId, timeout.Token) is { } logs)
                update = update with { Logs = logs };
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException)
        {
            LogSandboxUnreadable(update.MesosId, e.Message);
        }

        _updates.Writer.TryWrite(update);
        lock (_gate)
            _ending.Remove(update.MesosId);
    }

    private async Task AcknowledgeAsync(string frameworkId, string agentId, string taskId, string uuid, CancellationToken cancellationToken)
    {
        // A failed acknowledgement is harmless: the agent re-sends the update, and applying it again changes nothing.
        await CallQuietlyAsync("ACKNOWLEDGE", MesosCalls.Acknowledge(frameworkId, agentId, taskId, uuid), cancellationToken);
    }

    private async Task ReviveAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        Interlocked.Exchange(ref _reviveQueued, 0);
        if (_frameworkId is not { } frameworkId || !_subscribed.Task.IsCompleted)
            return;
        // SUPPRESS and REVIVE are decided and sent one at a time, so a SUPPRESS decided before new work arrived can
        // never reach the master after the REVIVE that work asked for.
        await _offerSwitch.WaitAsync(cancellationToken);
        try
        {
            lock (_gate)
                _suppressed = false;
            await CallQuietlyAsync("REVIVE", MesosCalls.Revive(frameworkId, _options.Roles), cancellationToken);
        }
        finally
        {
            _offerSwitch.Release();
        }

        await MatchAsync(cancellationToken);
    }

    private async Task SuppressAsync(CancellationToken cancellationToken)
    {
        await _offerSwitch.WaitAsync(cancellationToken);
        try
        {
            lock (_gate)
            {
                if (_pending.Count > 0 || _inFlight.Count > 0)
                    return;
                _suppressed = true;
            }

            await CallQuietlyAsync("SUPPRESS", MesosCalls.Suppress(_frameworkId!, _options.Roles), cancellationToken);
        }
        finally
        {
            _offerSwitch.Release();
        }
    }

    /// <summary>Safety net on each heartbeat: runs wait but no offer came for a while (a lost REVIVE, a long filter).</summary>
    private void ReviveIfStarved()
    {
        lock (_gate)
        {
            var starved = _pending.Count > 0 && _offers.Count == 0
                && _time.GetUtcNow() - _lastOffers > TimeSpan.FromSeconds(Math.Max(2, _options.RefuseSeconds * 2));
            if (!starved)
                return;
            _lastOffers = _time.GetUtcNow();
        }

        QueueRevive();
    }

    /// <summary>One REVIVE serves every launch handed over until it is sent.</summary>
    private void QueueRevive()
    {
        if (Interlocked.Exchange(ref _reviveQueued, 1) == 0)
            _ = Task.Run(() => ReviveAsync(_stopping.Token), CancellationToken.None);
    }

    private async Task CallQuietlyAsync(string what, System.Text.Json.Nodes.JsonObject call, CancellationToken cancellationToken)
    {
        try
        {
            await _connection.CallAsync(call, cancellationToken);
        }
        catch (Exception e) when (e is MesosCallException or HttpRequestException or InvalidOperationException
            || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            LogCallFailed(what, e.Message);
        }
    }

    [GeneratedRegex(@"exited with status (\d+)")]
    private static partial Regex ExitStatusPattern();

    private static int? ExitCode(string? message) =>
        message is not null && ExitStatusPattern().Match(message) is { Success: true } match
            ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture)
            : null;

    private static readonly IReadOnlyDictionary<string, string> EmptyAttributes = new Dictionary<string, string>();

    private sealed class Pending(TaskRun run, long seq)
    {
        public TaskRun Run { get; } = run;

        public long Seq { get; } = seq;

        public TaskCompletionSource<LaunchResult> Launched { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record Tracked(string FamilyId, string? AgentId, string? Hostname);

    private sealed record AgentInfo(string Id, string Hostname, Uri? Url, IReadOnlyDictionary<string, string> Attributes);

    [LoggerMessage(2114, LogLevel.Error, "The Mesos master refuses this framework, trying again in {Seconds} s: {Message}")]
    private partial void LogAccessRefused(string message, double seconds);

    [LoggerMessage(2120, LogLevel.Information, "Closed the Mesos subscription: this instance no longer schedules")]
    private partial void LogSteppedDown();

    [LoggerMessage(2101, LogLevel.Information, "Subscribed to Mesos as framework {FrameworkId} at {Master} (heartbeat every {Seconds} s)")]
    private partial void LogSubscribed(string frameworkId, string master, double seconds);

    [LoggerMessage(2102, LogLevel.Warning, "Mesos event stream failed, resubscribing in {Seconds} s: {Message}")]
    private partial void LogStreamFailed(string message, double seconds);

    [LoggerMessage(2103, LogLevel.Warning, "No Mesos heartbeat for {Seconds} s: resubscribing")]
    private partial void LogHeartbeatsMissed(double seconds);

    [LoggerMessage(2104, LogLevel.Warning, "The Mesos master ended the event stream: resubscribing")]
    private partial void LogStreamEnded();

    [LoggerMessage(2105, LogLevel.Warning, "The Mesos master sent an error: {Message}")]
    private partial void LogMasterError(string message);

    [LoggerMessage(2106, LogLevel.Warning, "Mesos {Call} failed: {Message}")]
    private partial void LogCallFailed(string call, string message);

    [LoggerMessage(2107, LogLevel.Information, "Launched {Count} tasks on {Agent} with {Offers} offers")]
    private partial void LogAccepted(int count, string agent, int offers);

    [LoggerMessage(2108, LogLevel.Warning, "The Mesos master refused an ACCEPT of {Count} tasks; they wait for the next offer: {Message}")]
    private partial void LogAcceptRefused(int count, string message);

    [LoggerMessage(2109, LogLevel.Warning, "ACCEPT of {Count} tasks got no answer; counted as launched and reconciled: {Message}")]
    private partial void LogAcceptAmbiguous(int count, string message);

    [LoggerMessage(2110, LogLevel.Information, "Asked Mesos to kill {MesosId} (grace {Seconds} s)")]
    private partial void LogKillSent(string mesosId, double seconds);

    [LoggerMessage(2111, LogLevel.Information, "Reconciling with Mesos: {Count} tasks explicitly, then implicitly")]
    private partial void LogReconcileSent(int count);

    [LoggerMessage(2113, LogLevel.Warning, "Could not read the sandbox output of {MesosId}: {Message}")]
    private partial void LogSandboxUnreadable(string mesosId, string message);

    [LoggerMessage(2112, LogLevel.Warning, "Mesos task {TaskId} runs for no active run: killing it")]
    private partial void LogOrphan(string taskId);
}
