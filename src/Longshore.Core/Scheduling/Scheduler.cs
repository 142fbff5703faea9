using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Longshore.Core.Execution;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Core.Tracing;
using Microsoft.Extensions.Logging;

namespace Longshore.Core.Scheduling;

/// <summary>What a kill request found.</summary>
public enum KillOutcome
{
    NotFound,
    AlreadyEnded,
    Killed,
    Killing,
}

/// <summary>
/// The loop that turns recorded intent into engine actions: reconcile at start, then admit waiting runs under the
/// caps, record TASK_STAGING, launch, and apply every status update through compare-and-set transitions.
/// </summary>
public sealed partial class Scheduler
{
    private readonly ITaskStore _store;
    private readonly IExecutionBackend _backend;
    private readonly RetryPolicy _retry;
    private readonly SchedulerOptions _options;
    private readonly TimeProvider _time;
    private readonly Func<Guid> _newId;
    private readonly SchedulerMetrics _metrics;
    private readonly ILogger _logger;
    private readonly WakeSignal _wake;
    private readonly ConcurrentDictionary<string, Task> _launching = new(StringComparer.Ordinal);
    // Runs a pass is staging, from just before their compare-and-set until their launch is in _launching: a reconciliation
    // running beside the pass must not take one for lost because the engine holds no container for it yet.
    private readonly ConcurrentDictionary<string, byte> _staging = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Task, byte> _background = new();
    // Writes in flight at once from staging and from engine reports. The stores combine what waits at the same moment
    // (one group commit, one combined statement), so more in flight means fewer, larger commits, not more connections.
    private const int StagingParallelism = 64;
    private const int UpdateLanes = 256;

    /// <summary>When the engine asked to be reconciled again before the regular interval (see <see cref="ReconcileResult.RecheckAfter"/>).</summary>
    private DateTimeOffset _recheckAt = DateTimeOffset.MaxValue;
    // When each kill was last sent: reconciliation sends again only one that has had its grace period to work.
    private readonly ConcurrentDictionary<string, DateTimeOffset> _killsSent = new(StringComparer.Ordinal);
    // Kills asked for on this instance while the run's launch was under way: the launch sends them once it is done.
    private readonly ConcurrentDictionary<string, byte> _killOnLaunch = new(StringComparer.Ordinal);
    private readonly ActiveRuns _active = new();

    private volatile bool _leading;

    // What launches (staging included) run under: not the loop's token, so a shutdown lets the ones under way finish.
    private CancellationToken _launches;

    /// <summary>Runs told to stop whose end has not been applied yet.</summary>
    internal int KillsInFlight => _killsSent.Count;

    /// <summary>The scheduler's instruments; the poll loop records the first step of a queue's messages on them too.</summary>
    public SchedulerMetrics Metrics => _metrics;

    /// <summary>Active runs as this scheduler counts them (exact while it leads).</summary>
    public int ActiveCount => _active.Total;

    /// <summary>Each family's max_concurrent as last seen on a waiting run, to leave full families out of the next read.</summary>
    private readonly Dictionary<string, int> _familyCaps = new(StringComparer.Ordinal);

    public Scheduler(ITaskStore store, IExecutionBackend backend, RetryPolicy retry, SchedulerOptions options, TimeProvider time,
        Func<Guid> newId, SchedulerMetrics metrics, ILogger<Scheduler> logger)
    {
        _store = store;
        _backend = backend;
        _retry = retry;
        _options = options;
        _time = time;
        _newId = newId;
        _metrics = metrics;
        _logger = logger;
        _wake = new WakeSignal(time);
        metrics.Meter.CreateObservableGauge("longshore_scheduler_free_capacity",
            () => _leading ? [new Measurement<int>(_options.Capacity - _active.Total)] : Array.Empty<Measurement<int>>(),
            description: "Runs the leading scheduler could still admit under --capacity.");
        metrics.Meter.CreateObservableGauge("longshore_family_active_runs",
            () => _leading
                ? _active.ByFamilyAndState().Select(pair => new Measurement<int>(pair.Value,
                    new KeyValuePair<string, object?>("family", pair.Key.Family), new KeyValuePair<string, object?>("state", pair.Key.State.ToWire())))
                : [],
            description: "Active runs (staging to killing) per task family and state, as the leading scheduler counts them.");
    }

    private KeyValuePair<string, object?> EngineTag => new("engine", _backend.Name);

    /// <summary>Time the last pass finished; null before the first.</summary>
    public DateTimeOffset? LastPassAt { get; private set; }

    /// <summary>True once the start-up reconciliation has run.</summary>
    public bool Reconciled { get; private set; }

    /// <summary>Raised after a run's end is durably recorded.</summary>
    public event Action<TaskRun, TaskState>? RunEnded;

    /// <summary>Wakes the loop now instead of at its next tick (new work, freed capacity).</summary>
    public void Nudge() => _wake.Nudge();

    /// <summary>True while <see cref="RunAsync"/> runs: this instance launches, watches and kills.</summary>
    public bool Leading => _leading;

    /// <summary>
    /// Cancelled when the whole process is stopping (SIGTERM), as opposed to this instance stepping down. A stop then
    /// admits nothing new but lets the launches under way finish, within <see cref="SchedulerOptions.ShutdownLaunchGrace"/>,
    /// and applies what the engine reports about them, so a restart finds every run launched or still waiting, none
    /// half-launched. A step-down cancels launches at once: another instance may already lead.
    /// </summary>
    public CancellationToken ShuttingDown { get; init; }

    /// <summary>
    /// Schedules until cancelled, or until the store refuses a write because another instance leads (then it throws
    /// <see cref="StaleTermException"/> after letting launches under way finish). Run again for each term led.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        Reconciled = false;
        _killsSent.Clear();
        _killOnLaunch.Clear();
        _active.ForgetStates();
        _leading = true;
        // Not linked to cancellationToken: engine reports are applied until the launches under way have finished.
        using var stop = new CancellationTokenSource();
        using var launches = new CancellationTokenSource();
        _launches = launches.Token;
        var updates = Task.Run(() => ConsumeUpdatesAsync(stop.Token), CancellationToken.None);
        StaleTermException? fenced = null;
        try
        {
            await ReconcileUntilDoneAsync(cancellationToken);
        }
        catch (StaleTermException e)
        {
            fenced = e;
        }

        var lastReconcile = _time.GetUtcNow();
        Task? reconciling = null;
        while (fenced is null && !cancellationToken.IsCancellationRequested)
        {
            try
            {
                await PassAsync(cancellationToken);
                await SendPendingKillsAsync(cancellationToken);
                if (reconciling is { IsCompleted: true })
                {
                    // Its failure is the loop's: a newer term ends this one; anything else is logged, and it runs again when due.
                    var done = reconciling;
                    reconciling = null;
                    await done;
                }

                // Beside the passes, not between them: listing the engine takes a podman half a second or more, and reading
                // every active run seconds at 200,000 of them; admissions stalled for that long at every reconciliation.
                if (reconciling is null && (_time.GetUtcNow() - lastReconcile >= _options.ReconcileInterval || _time.GetUtcNow() >= _recheckAt))
                {
                    lastReconcile = _time.GetUtcNow();
                    reconciling = Task.Run(async () =>
                    {
                        try
                        {
                            await ReconcileAsync(cancellationToken);
                        }
                        finally
                        {
                            // The loop looks at its outcome at once (a newer term must stop this one without waiting a tick).
                            Nudge();
                        }
                    }, CancellationToken.None);
                    Track(_background, reconciling);
                }

                await WaitForWorkAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (StaleTermException e)
            {
                fenced = e;
            }
            catch (Exception e)
            {
                LogPassFailed(e);
                await WaitForWorkAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }

        if (fenced is null && ShuttingDown.IsCancellationRequested)
            launches.CancelAfter(_options.ShutdownLaunchGrace);
        else
            await launches.CancelAsync();
        await Task.WhenAll(_launching.Values).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await stop.CancelAsync();
        await Task.WhenAll(_background.Keys).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await updates.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _leading = false;
        if (_backend is ILeaderBoundBackend bound)
            await bound.StepDownAsync();
        if (fenced is not null)
        {
            LogFenced(fenced.Term, fenced.StoredTerm);
            throw fenced;
        }
    }

    /// <summary>One turn of the loop without its wait: a pass, pending kills, and when the next due run comes.</summary>
    internal async Task<DateTimeOffset?> TurnAsync(CancellationToken cancellationToken)
    {
        await PassAsync(cancellationToken);
        await SendPendingKillsAsync(cancellationToken);
        return await _store.NextDueAsync(cancellationToken);
    }

    /// <summary>Kills asked for through any instance are recorded as TASK_KILLING; the leader is the one that tells the engine.</summary>
    private async Task SendPendingKillsAsync(CancellationToken cancellationToken)
    {
        foreach (var run in await _store.ListAsync(new RunQuery(100, State: TaskState.Killing), cancellationToken))
        {
            if (!_launching.ContainsKey(run.MesosId) && _killsSent.TryAdd(run.MesosId, _time.GetUtcNow()))
                Track(_background, SendKillAsync(run, cancellationToken));
        }
    }

    /// <summary>One admission pass: read due runs, pick what fits, record intent, launch.</summary>
    internal async Task PassAsync(CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var now = _time.GetUtcNow();
        // The counts are this leader's own (see ActiveRuns): at capacity a pass reads nothing at all.
        var free = _options.Capacity - _active.Total;
        IReadOnlyList<TaskRun> due = [];
        IReadOnlyDictionary<string, int> active = new Dictionary<string, int>();
        // Otherwise read twice as many waiting runs as can start (some may belong to a family that turns out to be full),
        // leaving out families known to be at their cap, so neither a long backlog nor a full family at its head costs or
        // blocks anything per pass.
        if (free > 0)
        {
            active = _active.ByFamily();
            var full = active.Where(family => _familyCaps.TryGetValue(family.Key, out var cap) && family.Value >= cap).Select(family => family.Key).ToList();
            due = await _store.ListDueAsync(now, Math.Min(_options.DueBatch, free * 2), full, cancellationToken);
            if (_familyCaps.Count > 100_000)
                _familyCaps.Clear();
            foreach (var run in due)
                _familyCaps[run.FamilyId] = run.Definition.MaxConcurrent;
        }

        if (due.Count > 0)
        {
            // Each admitted run is staged by its own compare-and-set; they are independent, so they go to the store
            // together (one group commit in SQLite, parallel transactions in a shared store) rather than one by one.
            var staged = new ConcurrentBag<TaskRun>();
            var admitted = Admission.Select(due, active, _options.Capacity);
            try
            {
                try
                {
                    await Parallel.ForEachAsync(admitted,
                        new ParallelOptions { MaxDegreeOfParallelism = StagingParallelism, CancellationToken = cancellationToken }, async (run, _) =>
                        {
                            // Intent before action: once TASK_STAGING is durable, a crash before or during the launch is found by
                            // reconciliation instead of being launched a second time. A stop starts no more of these, but one begun
                            // runs on to its launch (under _launches): a staging write cut off by cancellation may still have committed.
                            var at = _time.GetUtcNow();
                            _staging[run.MesosId] = 0;
                            if (await _store.TryTransitionAsync(new RunTransition(run.MesosId, [TaskState.WaitingOnOffers], TaskState.Staging, at), _launches))
                            {
                                var stagedRun = run with { State = TaskState.Staging, StagedAt = at };
                                _active.Started(stagedRun);
                                staged.Add(stagedRun);
                                Step(run.QueueId, "staged", at - run.CreatedAt);
                                RunTracing.Admitted(run, at);
                            }
                        });
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && !staged.IsEmpty)
                {
                    // Stopping: nothing more is staged, but the runs already staged go on to their launch.
                }

                // A leader paused after staging may wake after a newer one took over: look once more before acting on the
                // engine. (A pause between this look and the engine calls remains; the newer leader's reconciliation removes
                // what it leaves.)
                if (!staged.IsEmpty && Fencing.CurrentTerm is { } term && _store is ILeaseStore leases && (await leases.GetLeaseAsync(_launches))?.Term != term)
                {
                    LogLaunchAbandoned(staged.Count, term);
                    throw new StaleTermException(term, (await leases.GetLeaseAsync(_launches))?.Term);
                }

                foreach (var run in staged)
                    Track(_launching, run.MesosId, LaunchAsync(run, _launches));
            }
            finally
            {
                // On every way out, and only once each launch is in _launching (a reconciliation looks at _staging first):
                // a run staged by a pass that then failed is left for the reconciliation to find without a container.
                foreach (var run in admitted)
                    _staging.TryRemove(run.MesosId, out _);
            }
        }

        LastPassAt = _time.GetUtcNow();
        _metrics.LoopSeconds.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private async Task LaunchAsync(TaskRun run, CancellationToken cancellationToken)
    {
        await Task.Yield();
        try
        {
            await _backend.LaunchAsync(run, cancellationToken);
            _metrics.Launches.Add(1, EngineTag);
            LogLaunched(run.MesosId, run.Attempt);
            // A kill asked for here while the launch was under way could not reach the engine before now. (One asked for on
            // another instance, or that lost the race with this line, is sent by the next pass: the run is TASK_KILLING.)
            if (_killOnLaunch.TryRemove(run.MesosId, out _) && _killsSent.TryAdd(run.MesosId, _time.GetUtcNow()))
                await SendKillAsync(run, cancellationToken);
        }
        catch (LaunchException e)
        {
            LogLaunchFailed(run.MesosId, e.IsTransient, e.Message);
            _metrics.LaunchFailures.Add(1, EngineTag, new KeyValuePair<string, object?>("kind", e.IsTransient ? "transient" : "permanent"));
            var state = e.IsTransient ? TaskState.Dropped : TaskState.Failed;
            await ApplyAsync(new StatusUpdate(run.MesosId, state, _time.GetUtcNow()) { Reason = "launch failed: " + e.Message }, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Cut off (a step-down, or a shutdown past its grace): the run stays TASK_STAGING and the next leader reconciles it.
        }
        catch (StaleTermException)
        {
            // No longer the leader: the newer one reconciles this run.
        }
        catch (Exception e)
        {
            LogLaunchFailed(run.MesosId, true, e.Message);
            _metrics.LaunchFailures.Add(1, EngineTag, new KeyValuePair<string, object?>("kind", "transient"));
            await ApplyAsync(new StatusUpdate(run.MesosId, TaskState.Dropped, _time.GetUtcNow()) { Reason = "launch failed: " + e.Message }, cancellationToken);
        }
    }

    /// <summary>
    /// Applies engine reports in lanes by run id: a run's reports stay in order, different runs' are applied side by side
    /// (each is a store round trip; one at a time would cap throughput at the store's latency). Reports read but not yet
    /// applied when the loop stops are found again by the next reconciliation.
    /// </summary>
    private async Task ConsumeUpdatesAsync(CancellationToken cancellationToken)
    {
        var lanes = Enumerable.Range(0, UpdateLanes)
            .Select(_ => Channel.CreateUnbounded<StatusUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true })).ToArray();
        var workers = lanes.Select(lane => Task.Run(() => ApplyLaneAsync(lane.Reader, cancellationToken), CancellationToken.None)).ToArray();
        try
        {
            await foreach (var update in _backend.Updates.ReadAllAsync(cancellationToken))
                lanes[(int)((uint)StringComparer.Ordinal.GetHashCode(update.MesosId) % UpdateLanes)].Writer.TryWrite(update);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var lane in lanes)
                lane.Writer.TryComplete();
            await Task.WhenAll(workers);
        }
    }

    private async Task ApplyLaneAsync(ChannelReader<StatusUpdate> lane, CancellationToken cancellationToken)
    {
        await foreach (var next in lane.ReadAllAsync(CancellationToken.None))
        {
            if (cancellationToken.IsCancellationRequested)
                continue;
            var update = next;
            StatusUpdate? start = null;
            // A run's start with its end already waiting behind it: one write of the end that keeps the start's time and
            // what it learned, instead of two (under load, short tasks end before their start is written).
            if (update.State == TaskState.Running && lane.TryPeek(out var end) && end.MesosId == update.MesosId && end.State.IsTerminal()
                && lane.TryRead(out _))
            {
                start = update;
                update = end with
                {
                    StartedAt = end.StartedAt ?? start.At,
                    ContainerId = end.ContainerId ?? start.ContainerId,
                    Agent = end.Agent ?? start.Agent,
                };
            }

            try
            {
                await ApplyAsync(update, cancellationToken);
                // Acknowledged only after the write: an engine that re-sends until acknowledged repeats it after a crash.
                if (start?.Applied is { } started)
                    await started(cancellationToken);
                if (update.Applied is { } applied)
                    await applied(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                LogUpdateFailed(update.MesosId, update.State.ToWire(), e);
            }
        }
    }

    /// <summary>
    /// Applies one engine report. Late or duplicate reports change nothing: every write is a compare-and-set from the
    /// state just read, re-read and re-decided when another writer got there first.
    /// </summary>
    public async Task ApplyAsync(StatusUpdate update, CancellationToken cancellationToken = default)
    {
        // A report on the way to the end (starting, running) of a run this leader staged is a compare-and-set from the
        // state it last recorded: no read first. Should the store hold another state (a kill asked for elsewhere), the
        // write changes nothing and the report is decided again below from what the store holds.
        // (A report of the same state with a reason, news of why a run has not started yet, is decided below: it needs the
        // stored reason.)
        if (!update.State.IsTerminal() && _active.TryGet(update.MesosId, out var known)
            && !(update.State == known.State && update.Reason is not null && known.State is TaskState.Staging or TaskState.Starting))
        {
            if (update.State == known.State || !TaskStates.CanTransition(known.State, update.State))
                return;
            if (await _store.TryTransitionAsync(new RunTransition(update.MesosId, [known.State], update.State, update.At)
                {
                    Reason = update.Reason,
                    ContainerId = update.ContainerId,
                    Agent = update.Agent,
                }, cancellationToken))
            {
                Moved(update.MesosId, update.State, update.At, known.QueueId, known.MessageKey, known.StagedAt);
                return;
            }
        }

        // The end of a run this leader staged, likewise: a compare-and-set from the state it last recorded, with what it
        // staged (the definition and retries an end's retry is made from do not change while a run runs). A run this
        // leader asked to die is read: its end keeps why it was killed.
        if (update.State.IsTerminal() && _active.TryGet(update.MesosId, out var ending) && ending.Staged is { } staged
            && ending.State != TaskState.Killing
            && await TryEndAsync(staged with { State = ending.State, StartedAt = ending.StartedAt }, update, cancellationToken))
            return;

        for (var attempt = 0; attempt < 8; attempt++)
        {
            var run = await _store.GetAsync(update.MesosId, cancellationToken);
            if (run is null)
            {
                LogUnknownRun(update.MesosId, update.State.ToWire());
                return;
            }

            if (run.State.IsTerminal())
            {
                // Already ended (a duplicate report, or a race with reconciliation): only make sure nothing is left behind.
                if (update.State.IsTerminal())
                {
                    _killsSent.TryRemove(run.MesosId, out _);
                    Track(_background, ReleaseAsync(run, cancellationToken));
                }

                return;
            }

            if (!update.State.IsTerminal())
            {
                // A run still waiting to start, with news of why (a pod the cluster cannot place yet, an image still pulling):
                // the reason is kept, the state stays.
                var news = update.State == run.State && run.State is TaskState.Staging or TaskState.Starting
                    && update.Reason is not null && update.Reason != run.Reason;
                if (!news && (update.State == run.State || !TaskStates.CanTransition(run.State, update.State)))
                    return;
                var moved = await _store.TryTransitionAsync(new RunTransition(run.MesosId, [run.State], update.State, update.At)
                {
                    Reason = update.Reason,
                    ContainerId = update.ContainerId,
                    Agent = update.Agent,
                }, cancellationToken);
                if (moved)
                {
                    Moved(run.MesosId, update.State, update.At, run.QueueId, run.MessageKey, run.StagedAt);
                    return;
                }

                continue;
            }

            if (await TryEndAsync(run, update, cancellationToken))
                return;
        }

        LogUpdateGaveUp(update.MesosId, update.State.ToWire());
    }

    /// <summary>
    /// Records <paramref name="update"/>, an end, as the end of <paramref name="run"/> (as last read or recorded): a
    /// compare-and-set from its state, with the retry it earns. False when the run is no longer in that state.
    /// </summary>
    private async Task<bool> TryEndAsync(TaskRun run, StatusUpdate update, CancellationToken cancellationToken)
    {
        // Whatever ends a run that was asked to die, it was killed, and a kill is never retried. Why it was asked to die
        // (a health check, a job scaled down) stays first in the reason, whatever the engine says about the end.
        var end = run.State == TaskState.Killing ? TaskState.Killed : update.State;
        var reason = run.State == TaskState.Killing
            ? update.Reason is null ? run.Reason ?? "killed on request" : $"{run.Reason ?? "killed on request"}; {update.Reason}"
            : update.Reason;
        var retry = _retry.NextAttempt(run, end, _newId(), _time.GetUtcNow());
        var ended = await _store.TryTransitionAsync(new RunTransition(run.MesosId, [run.State], end, update.At)
        {
            ExitCode = update.ExitCode,
            Reason = reason,
            // No output is kept as no row: a run that has ended without kept logs shows empty ones.
            Logs = update.Logs is { Stdout.Length: 0, Stderr.Length: 0, Truncated: false } ? null : update.Logs,
            Retry = retry,
            ContainerId = update.ContainerId,
            Agent = update.Agent,
            // The store keeps a start already recorded.
            StartedAt = update.StartedAt,
        }, cancellationToken);
        if (!ended)
            return false;

        if (run.State.IsActive())
            _active.Ended(run.MesosId, run.FamilyId);
        _metrics.Ends.Add(1, new KeyValuePair<string, object?>("state", end.ToWire()), new KeyValuePair<string, object?>("family", run.FamilyId));
        // A start written with the end was not seen by Moved: it is measured here.
        if (run.StartedAt is null && update.StartedAt is not null)
            Launched(run.MesosId, run.QueueId, run.MessageKey, run.StagedAt);
        var endedAt = _time.GetUtcNow();
        var started = run.StartedAt ?? update.StartedAt;
        if (started is { } startedAt)
            Step(run.QueueId, "ended", endedAt - startedAt);
        RunTracing.Ended(run, end, update.ExitCode, reason, started ?? run.StagedAt ?? run.CreatedAt, endedAt);
        LogEnded(run.MesosId, end.ToWire(), update.ExitCode, reason, retry?.MesosId);
        // An ended run needs no kill any more: forgetting it keeps the set as small as the runs still dying.
        _killsSent.TryRemove(run.MesosId, out _);
        Track(_background, ReleaseAsync(run, cancellationToken));
        Nudge();
        RunEnded?.Invoke(run, end);
        return true;
    }

    /// <summary>Kills a run: one never launched ends at once; a launched one is told to stop (SIGTERM, then SIGKILL).</summary>
    /// <param name="reason">Why, kept as the run's reason.</param>
    public async Task<(KillOutcome Outcome, TaskRun? Run)> KillAsync(string mesosId, string reason = "killed on request", CancellationToken cancellationToken = default)
    {
        for (var attempt = 0; attempt < 8; attempt++)
        {
            var run = await _store.GetAsync(mesosId, cancellationToken);
            if (run is null)
                return (KillOutcome.NotFound, null);
            if (run.State.IsTerminal())
                return (KillOutcome.AlreadyEnded, run);
            if (run.State == TaskState.Killing)
                return (KillOutcome.Killing, run);

            var now = _time.GetUtcNow();
            if (run.State == TaskState.WaitingOnOffers)
            {
                if (await _store.TryTransitionAsync(new RunTransition(mesosId, [TaskState.WaitingOnOffers], TaskState.Killed, now) { Reason = reason + " before launch" }, cancellationToken))
                {
                    _metrics.Ends.Add(1, new KeyValuePair<string, object?>("state", TaskState.Killed.ToWire()), new KeyValuePair<string, object?>("family", run.FamilyId));
                    RunEnded?.Invoke(run, TaskState.Killed);
                    return (KillOutcome.Killed, await _store.GetAsync(mesosId, cancellationToken));
                }

                continue;
            }

            if (await _store.TryTransitionAsync(new RunTransition(mesosId, [run.State], TaskState.Killing, now) { Reason = reason }, cancellationToken))
            {
                _active.Moved(mesosId, TaskState.Killing, now);
                // A launch still under way sends the kill itself once the engine holds the container (one still waiting
                // inside the engine for an offer is withdrawn, and its launch ends as killed); on an instance that does not
                // lead, the leader's next pass sends it.
                if (_leading && !_launching.ContainsKey(mesosId) && _killsSent.TryAdd(mesosId, _time.GetUtcNow()))
                    Track(_background, SendKillAsync(run, CancellationToken.None));
                else if (_backend is IDeferredLaunch deferred && deferred.TryWithdraw(mesosId))
                    return (KillOutcome.Killing, await _store.GetAsync(mesosId, cancellationToken));
                else if (_launching.ContainsKey(mesosId))
                    _killOnLaunch.TryAdd(mesosId, 0);
                return (KillOutcome.Killing, await _store.GetAsync(mesosId, cancellationToken));
            }
        }

        return (KillOutcome.Killing, await _store.GetAsync(mesosId, cancellationToken));
    }

    private async Task SendKillAsync(TaskRun run, CancellationToken cancellationToken)
    {
        try
        {
            if (!await _backend.KillAsync(run, _options.KillGrace, cancellationToken))
            {
                // The engine holds nothing for it: the run is over, and killed is what it was asked to be.
                await ApplyAsync(new StatusUpdate(run.MesosId, TaskState.Killed, _time.GetUtcNow()) { Reason = "the engine held no container" }, cancellationToken);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Left TASK_KILLING: the next reconciliation sends the kill again.
            LogKillFailed(run.MesosId, e.Message);
        }
    }

    private async Task ReleaseAsync(TaskRun run, CancellationToken cancellationToken)
    {
        try
        {
            await _backend.ReleaseAsync(run, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // What is not released now is found as an orphan by the next reconciliation.
            LogReleaseFailed(run.MesosId, e.Message);
        }
    }

    private async Task ReconcileUntilDoneAsync(CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (true)
        {
            try
            {
                await ReconcileAsync(cancellationToken);
                return;
            }
            catch (Exception e) when (e is not (OperationCanceledException or StaleTermException))
            {
                // Launching before knowing what the engine already runs could start a run twice.
                LogReconcileFailed(e.Message, delay.TotalSeconds);
                await Task.Delay(delay, _time, cancellationToken);
                delay = TimeSpan.FromSeconds(Math.Min(30, delay.TotalSeconds * 2));
            }
        }
    }

    /// <summary>Compares active runs with the engine: adopts what it holds, ends what it lost, re-sends pending kills.</summary>
    public async Task ReconcileAsync(CancellationToken cancellationToken = default)
    {
        _active.BeginRecount();
        var active = await _store.ListActiveAsync(cancellationToken);
        if (_active.Recount(active) is var drift and > 0 && Reconciled)
            LogCountDrift(drift);
        var settled = active.Where(run => !Launching(run.MesosId)).ToArray();
        var result = await _backend.ReconcileAsync(active, cancellationToken);
        _recheckAt = result.RecheckAfter is { } after ? _time.GetUtcNow() + after : DateTimeOffset.MaxValue;
        var gone = result.GoneMesosIds.ToHashSet(StringComparer.Ordinal);
        foreach (var run in settled)
        {
            if (gone.Contains(run.MesosId) && !Launching(run.MesosId))
            {
                await ApplyAsync(new StatusUpdate(run.MesosId, TaskState.Lost, _time.GetUtcNow())
                {
                    Reason = run.State == TaskState.Staging
                        ? "the engine holds no container for this run: the launch was interrupted"
                        : "container vanished: the engine no longer holds it",
                }, cancellationToken);
            }
            else if (run.State == TaskState.Killing && !KillUnderWay(run.MesosId))
            {
                _killsSent[run.MesosId] = _time.GetUtcNow();
                Track(_background, SendKillAsync(run, cancellationToken));
            }
        }

        LogReconciled(active.Count, gone.Count, result.OrphansRemoved);
        Reconciled = true;
    }

    /// <summary>
    /// Being staged or launched by this scheduler now: the engine may not hold its container yet. _staging is looked at
    /// first, since a run leaves it only once it is in _launching.
    /// </summary>
    private bool Launching(string mesosId) => _staging.ContainsKey(mesosId) || _launching.ContainsKey(mesosId);

    /// <summary>Records a move to another active state; reaching TASK_RUNNING ends the launch step.</summary>
    private void Moved(string mesosId, TaskState state, DateTimeOffset at, string? queueId, string? messageKey, DateTimeOffset? stagedAt)
    {
        _active.Moved(mesosId, state, at);
        if (state == TaskState.Running)
            Launched(mesosId, queueId, messageKey, stagedAt);
    }

    /// <summary>A run's start is recorded: how long its launch took, from staging.</summary>
    private void Launched(string mesosId, string? queueId, string? messageKey, DateTimeOffset? stagedAt)
    {
        if (stagedAt is not { } staged)
            return;
        var now = _time.GetUtcNow();
        _metrics.LaunchSeconds.Record((now - staged).TotalSeconds, EngineTag);
        Step(queueId, "running", now - staged);
        RunTracing.Launched(mesosId, messageKey, _backend.Name, staged, now);
    }

    private void Step(string? queueId, string step, TimeSpan duration)
    {
        if (queueId is not null)
            _metrics.StepSeconds.Record(Math.Max(0, duration.TotalSeconds), new KeyValuePair<string, object?>("queue", queueId), new KeyValuePair<string, object?>("step", step));
    }

    /// <summary>A kill sent less than its grace period (and a little) ago is still working: sending it again would only repeat it.</summary>
    private bool KillUnderWay(string mesosId) =>
        _killsSent.TryGetValue(mesosId, out var sent) && _time.GetUtcNow() - sent < _options.KillGrace + TimeSpan.FromSeconds(5);

    private async Task WaitForWorkAsync(CancellationToken cancellationToken)
    {
        var delay = _options.IdleInterval;
        var next = await _store.NextDueAsync(cancellationToken);
        if (next is { } due)
        {
            var untilDue = due - _time.GetUtcNow();
            if (untilDue < delay)
                delay = untilDue <= TimeSpan.Zero ? TimeSpan.FromMilliseconds(10) : untilDue;
        }

        await _wake.WaitAsync(delay, cancellationToken);
    }

    private static void Track<TKey>(ConcurrentDictionary<TKey, Task> set, TKey key, Task task)
        where TKey : notnull
    {
        set[key] = task;
        _ = task.ContinueWith(_ => set.TryRemove(key, out var _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private static void Track(ConcurrentDictionary<Task, byte> set, Task task)
    {
        set[task] = 0;
        _ = task.ContinueWith(t => set.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    [LoggerMessage(1001, LogLevel.Information, "Launched {MesosId} (attempt {Attempt})")]
    private partial void LogLaunched(string mesosId, int attempt);

    [LoggerMessage(1002, LogLevel.Warning, "Launch of {MesosId} failed (transient: {Transient}): {Message}")]
    private partial void LogLaunchFailed(string mesosId, bool transient, string message);

    [LoggerMessage(1003, LogLevel.Information, "{MesosId} ended {State} (exit code {ExitCode}, reason {Reason}); retry: {RetryMesosId}")]
    private partial void LogEnded(string mesosId, string state, int? exitCode, string? reason, string? retryMesosId);

    [LoggerMessage(1004, LogLevel.Warning, "Status update {State} for unknown run {MesosId} ignored")]
    private partial void LogUnknownRun(string mesosId, string state);

    [LoggerMessage(1005, LogLevel.Error, "Applying {State} to {MesosId} failed")]
    private partial void LogUpdateFailed(string mesosId, string state, Exception exception);

    [LoggerMessage(1006, LogLevel.Warning, "Gave up applying {State} to {MesosId}: the run kept changing under it")]
    private partial void LogUpdateGaveUp(string mesosId, string state);

    [LoggerMessage(1007, LogLevel.Warning, "Kill of {MesosId} failed, retried at the next reconciliation: {Message}")]
    private partial void LogKillFailed(string mesosId, string message);

    [LoggerMessage(1008, LogLevel.Warning, "Releasing {MesosId} failed, left for reconciliation: {Message}")]
    private partial void LogReleaseFailed(string mesosId, string message);

    [LoggerMessage(1009, LogLevel.Warning, "Reconciliation failed, nothing is launched until it succeeds; retry in {Seconds} s: {Message}")]
    private partial void LogReconcileFailed(string message, double seconds);

    [LoggerMessage(1010, LogLevel.Information, "Reconciled {Active} active runs: {Gone} gone, {Orphans} orphaned containers removed")]
    private partial void LogReconciled(int active, int gone, int orphans);

    [LoggerMessage(1012, LogLevel.Warning, "Not launching {Count} staged runs: term {Term} is no longer the store's; the current leader reconciles them")]
    private partial void LogLaunchAbandoned(int count, long term);

    [LoggerMessage(1014, LogLevel.Warning, "Active run counts differed from the store's by {Drift}; corrected")]
    private partial void LogCountDrift(int drift);

    [LoggerMessage(1013, LogLevel.Warning, "Scheduler stopped: the store refused a write of term {Term} (store at term {StoredTerm})")]
    private partial void LogFenced(long term, long? storedTerm);

    [LoggerMessage(1011, LogLevel.Error, "Scheduler pass failed")]
    private partial void LogPassFailed(Exception exception);
}
