using System.Diagnostics;
using System.Collections.Concurrent;
using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;
using Longshore.Core.Tracing;
using Microsoft.Extensions.Logging;

namespace Longshore.Core.Queues;

/// <summary>
/// The one poll loop every source plugs into: for each enabled queue that is due, asks its source for as many messages
/// as the queue's <c>max_concurrent</c> leaves room for, turns each batch into a run, and records runs, message handles
/// and the source's new watermark in one transaction. When a run chain ends, its messages are acknowledged (finished)
/// or released back to the source (failed for good). Source errors are shown on the queue and backed off.
/// </summary>
public sealed partial class QueuePoller : IDisposable
{
    private readonly IQueueStore _queues;
    private readonly Scheduler _scheduler;
    private readonly Dictionary<string, IQueueSource> _sources;
    private readonly TimeProvider _time;
    private readonly Func<Guid> _newId;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, int> _failures = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _recovered = new(StringComparer.Ordinal);
    private readonly WakeSignal _wake;
    private readonly WakeSignal _settleWake;

    /// <summary>Ended batches listed per settling pass.</summary>
    private const int SettlePage = 200;
    // One wake signal per running queue loop: a run of the queue ending frees room, an API change may move its next poll.
    private readonly ConcurrentDictionary<string, WakeSignal> _queueWakes = new(StringComparer.Ordinal);

    // Settling and lease renewal take turns, so a lease is never renewed just after its message was released.
    private readonly SemaphoreSlim _settling = new(1, 1);

    // Per queue, settling a batch (telling the source, then marking the batch) and checking a poll's messages against the
    // recorded ones (then recording them) take turns. A source that waits for messages can take a released message back
    // between the release and the mark; checked before the mark, it would count as a redelivery of a pending batch, make
    // no task and come back only after its visibility timeout.
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _recordGates = new(StringComparer.Ordinal);

    private SemaphoreSlim RecordGate(string queueId) => _recordGates.GetOrAdd(queueId, _ => new SemaphoreSlim(1, 1));

    private readonly QueueSecrets? _secrets;
    private readonly QueueMetrics _metrics;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _backlogMeasured = new(StringComparer.Ordinal);
    // The first run of each batch recorded here and not yet settled, for the settle span's run id (lost on a restart).
    private readonly ConcurrentDictionary<string, string> _batchRuns = new(StringComparer.Ordinal);

    /// <summary>How often a queue's backlog is asked of its source (some sources count by listing).</summary>
    public static readonly TimeSpan BacklogInterval = TimeSpan.FromSeconds(15);

    public QueuePoller(IQueueStore queues, Scheduler scheduler, IEnumerable<IQueueSource> sources, TimeProvider time, Func<Guid> newId, ILogger<QueuePoller> logger,
        QueueSecrets? secrets = null, QueueMetrics? metrics = null)
    {
        _secrets = secrets;
        _metrics = metrics ?? new QueueMetrics();
        _queues = queues;
        _scheduler = scheduler;
        _sources = sources.ToDictionary(s => s.Type.Type, StringComparer.Ordinal);
        _time = time;
        _newId = newId;
        _logger = logger;
        _wake = new WakeSignal(time);
        _settleWake = new WakeSignal(time);
        scheduler.RunEnded += (run, _) =>
        {
            if (run.QueueId is not null)
            {
                _settleWake.Nudge();
                Nudge(run.QueueId);
            }
        };
    }

    /// <summary>
    /// The key of the queue's source state under which the poll loop keeps, in Unix milliseconds, when a poll last made
    /// tasks (Hippo's <c>last_task_queued_tstamp</c>); stored in the same transaction as those tasks. Sources never use it.
    /// </summary>
    public const string LastTaskQueuedKey = "longshore:last_task_queued_at";

    /// <summary>When a poll of the queue last made tasks, from its source state; null if none ever did.</summary>
    public static DateTimeOffset? LastTaskQueuedAt(IReadOnlyDictionary<string, string> state) =>
        state.TryGetValue(LastTaskQueuedKey, out var text) && long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ms)
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms)
            : null;

    /// <summary>Longest sleep between passes. Default 1 s.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(1);

    public IReadOnlyDictionary<string, IQueueSource> Sources => _sources;

    /// <summary>Looks at every queue again now (one was created, changed or enabled).</summary>
    public void Nudge()
    {
        _wake.Nudge();
        foreach (var wake in _queueWakes.Values)
            wake.Nudge();
    }

    /// <summary>Polls the queue now if it is due, instead of at its loop's next look.</summary>
    public void Nudge(string queueId)
    {
        if (_queueWakes.TryGetValue(queueId, out var wake))
            wake.Nudge();
    }

    public void Dispose()
    {
        _settling.Dispose();
        foreach (var gate in _recordGates.Values)
            gate.Dispose();
    }

    /// <summary>
    /// Runs one poll loop per enabled queue, and beside them the settling of ended batches and the lease renewal of
    /// leasing sources, until cancelled.
    /// </summary>
    public Task RunAsync(CancellationToken cancellationToken = default) =>
        Task.WhenAll(SuperviseAsync(cancellationToken), SettleLoopAsync(cancellationToken), RenewLeasesLoopAsync(cancellationToken));

    /// <summary>
    /// Keeps one loop per enabled queue: a queue's poll (a source may wait inside it for messages, as an SQS long poll or
    /// a Redis blocking move does) never holds up another queue's. A queue disabled or deleted is stopped softly: a poll
    /// under way is let finish and gives back what it took (cancelling it would leave a message the source already
    /// handed over hidden until its visibility timeout), and a new loop for the queue waits until the old one is done.
    /// </summary>
    private async Task SuperviseAsync(CancellationToken cancellationToken)
    {
        var loops = new Dictionary<string, (CancellationTokenSource Stop, Task Loop)>(StringComparer.Ordinal);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    if (_scheduler.Reconciled)
                    {
                        var enabled = (await _queues.ListQueuesAsync(cancellationToken)).Where(q => q.Enabled).Select(q => q.Id).ToHashSet(StringComparer.Ordinal);
                        foreach (var (id, (stop, loop)) in loops.ToList())
                        {
                            if (loop.IsCompleted)
                            {
                                stop.Dispose();
                                loops.Remove(id);
                            }
                            else if (!enabled.Contains(id))
                            {
                                await stop.CancelAsync();
                            }
                        }

                        foreach (var id in enabled.Where(id => !loops.ContainsKey(id)))
                        {
                            // The soft stop is linked to the poller's own: a shutdown stops the loop's waits too.
                            var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                            loops[id] = (stop, Task.Run(() => QueueLoopAsync(id, stop.Token, cancellationToken), CancellationToken.None));
                        }
                    }
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    LogPassFailed(e);
                }

                await _wake.WaitAsync(Interval, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
        finally
        {
            await Task.WhenAll(loops.Values.Select(l => l.Loop)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            foreach (var (stop, _) in loops.Values)
                stop.Dispose();
        }
    }

    /// <summary>Polls one queue whenever it is due, until it is disabled or deleted (or the poller stops).</summary>
    private async Task QueueLoopAsync(string id, CancellationToken stopping, CancellationToken cancellationToken)
    {
        var wake = _queueWakes[id] = new WakeSignal(_time);
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                var wait = Interval;
                try
                {
                    if (await _queues.GetQueueAsync(id, cancellationToken) is not { Enabled: true } queue)
                        return;
                    var now = _time.GetUtcNow();
                    if (queue.NextPollAt is null || queue.NextPollAt <= now)
                    {
                        await PollAsync(queue, cancellationToken, stopping);
                        continue;
                    }

                    wait = queue.NextPollAt.Value - now;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e)
                {
                    LogPassFailed(e);
                }

                await wake.WaitAsync(wait, stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
        finally
        {
            _queueWakes.TryRemove(new KeyValuePair<string, WakeSignal>(id, wake));
            _metrics.Forget(id);
            // The supervisor starts the queue's loop again at once if it was enabled again meanwhile.
            if (stopping.IsCancellationRequested)
                _wake.Nudge();
        }
    }

    /// <summary>Acknowledges or releases the messages of ended batches, whenever runs of a queue end.</summary>
    private async Task SettleLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                // A full page that made progress means more may be waiting: settle on at once rather than a page per wake-up
                // (one that settled nothing, a source refusing, waits for the next wake-up as before).
                if (_scheduler.Reconciled)
                {
                    while (await SettleAsync(cancellationToken) is { Listed: >= SettlePage, Settled: > 0 } && !cancellationToken.IsCancellationRequested)
                    {
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogPassFailed(e);
            }

            await _settleWake.WaitAsync(Interval, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>
    /// Its own loop, not a step of the poll pass: a long poll (SQS waits up to 20 s for messages) must not hold up the
    /// renewal of leases that run out in seconds.
    /// </summary>
    private async Task RenewLeasesLoopAsync(CancellationToken cancellationToken)
    {
        var due = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        while (!cancellationToken.IsCancellationRequested)
        {
            var wait = Interval;
            try
            {
                if (_scheduler.Reconciled)
                {
                    foreach (var stored in await _queues.ListQueuesAsync(cancellationToken))
                    {
                        if (_sources.GetValueOrDefault(stored.Block.Type ?? string.Empty) is not ILeasingSource leasing)
                            continue;
                        StoredQueue queue;
                        try
                        {
                            queue = Usable(stored);
                        }
                        catch (SecretReferenceException e)
                        {
                            LogLeaseFailed(stored.Id, e.Message);
                            continue;
                        }

                        var every = leasing.LeaseRenewal(queue);
                        wait = every < wait ? every : wait;
                        var now = _time.GetUtcNow();
                        if (due.GetValueOrDefault(queue.Id) > now)
                            continue;
                        due[queue.Id] = now + every;
                        await RenewLeasesAsync(leasing, queue, cancellationToken);
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogPassFailed(e);
            }

            await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>Renews the leases of the queue's unsettled messages (disabled queues too: their tasks still run).</summary>
    public async Task RenewLeasesAsync(ILeasingSource leasing, StoredQueue queue, CancellationToken cancellationToken = default)
    {
        await _settling.WaitAsync(cancellationToken);
        try
        {
            var handles = await _queues.PendingHandlesAsync(queue.Id, cancellationToken);
            if (handles.Count > 0)
                await leasing.ExtendAsync(queue, handles.ToList(), cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogLeaseFailed(queue.Id, e.Message);
        }
        finally
        {
            _settling.Release();
        }
    }

    /// <summary>The queue with its secret settings decrypted, for a source to use (never to show or store).</summary>
    public StoredQueue Usable(StoredQueue queue) => _secrets?.Reveal(queue) ?? queue;

    /// <summary>
    /// One poll iteration of one queue. When <paramref name="stopping"/> is set by the time the source answers (the queue
    /// was disabled or deleted meanwhile), what the poll took goes back to the source and nothing is recorded.
    /// </summary>
    public async Task PollAsync(StoredQueue queue, CancellationToken cancellationToken = default, CancellationToken stopping = default)
    {
        var now = _time.GetUtcNow();
        try
        {
            queue = Usable(queue);
        }
        catch (SecretReferenceException e)
        {
            // A referenced secret is missing: shown on the queue, and looked for again at the next poll.
            await _queues.RecordPollAsync(queue.Id, now, e.Message, now + TimeSpan.FromSeconds(queue.Block.FrequencySeconds), cancellationToken);
            return;
        }

        if (!_sources.TryGetValue(queue.Block.Type ?? string.Empty, out var source))
        {
            await _queues.RecordPollAsync(queue.Id, now, $"unknown queue type '{queue.Block.Type}'", now + TimeSpan.FromSeconds(queue.Block.FrequencySeconds), cancellationToken);
            return;
        }

        // max_concurrent counts messages in flight: each unfinished task holds a whole batch.
        var (active, oldestWaiting) = await _queues.QueueLoadAsync(queue.Id, cancellationToken);
        _metrics.SetOldestWaiting(queue.Id, oldestWaiting is { } oldest ? now - oldest : TimeSpan.Zero);
        await MeasureBacklogAsync(queue, source, now, cancellationToken);
        var room = queue.Block.MaxConcurrent - ((long)active * queue.Block.BatchSize);
        if (room <= 0)
        {
            // Full: the messages wait in the source; look again soon, since capacity frees up as runs end.
            await _queues.RecordPollAsync(queue.Id, now, null, now + Interval, cancellationToken);
            return;
        }

        PollResult result;
        try
        {
            // Once per queue and process: anything taken from the source but never recorded goes back first.
            if (source is IRecoveringSource recovering && !_recovered.ContainsKey(queue.Id))
            {
                var returned = await recovering.RecoverAsync(queue, await _queues.PendingHandlesAsync(queue.Id, cancellationToken), cancellationToken);
                _recovered.TryAdd(queue.Id, 0);
                if (returned > 0)
                    LogRecovered(queue.Id, returned);
            }

            var state = await _queues.GetSourceStateAsync(queue.Id, cancellationToken);
            result = await source.PollAsync(queue, state, (int)Math.Min(int.MaxValue, room), now, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _metrics.PollErrors.Add(1, Tag(queue.Id));
            var failures = _failures.AddOrUpdate(queue.Id, 1, (_, count) => count + 1);
            var backoff = TimeSpan.FromSeconds(Math.Min(queue.Block.FrequencySeconds, Math.Pow(2, Math.Min(failures, 16))));
            LogSourceFailed(queue.Id, failures, backoff.TotalSeconds, e.Message);
            await _queues.RecordPollAsync(queue.Id, now, e.Message, now + backoff, cancellationToken);
            return;
        }

        _failures.TryRemove(queue.Id, out _);
        if (stopping.IsCancellationRequested)
        {
            var taken = result.Messages.Where(m => m.Handle is not null).Select(m => m.Handle!).ToList();
            await GiveBackAsync(queue, source, taken);
            if (result.Messages.Count > 0)
                LogGivenBack(queue.Id, result.Messages.Count);
            return;
        }

        var received = Stopwatch.GetTimestamp();
        var receivedAt = _time.GetUtcNow();
        if (result.Messages.Count > 0)
            _metrics.Received.Add(result.Messages.Count, Tag(queue.Id));
        var gate = RecordGate(queue.Id);
        await gate.WaitAsync(cancellationToken);
        List<QueueBatch> batches;
        List<QueueMessage[]> chunks;
        try
        {
            var fresh = await DropDuplicatesAsync(queue, source, result.Messages, now, cancellationToken);
            chunks = fresh.Chunk(queue.Block.BatchSize).ToList();
            batches = chunks.Select(messages => new QueueBatch(NewRun(queue, messages, receivedAt),
                messages.Where(m => m.Handle is not null).Select(m => m.Handle!).ToList())
            {
                DedupKeys = messages.Where(m => m.DedupKey is not null).Select(m => new DedupEntry(m.DedupKey!, m.Handle)).ToList(),
            }).ToList();
            try
            {
                var state = batches.Count == 0 ? result.State : new Dictionary<string, string>(result.State, StringComparer.Ordinal)
                {
                    [LastTaskQueuedKey] = now.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
                };
                // The poll is recorded in the same write: one durable commit per poll, not two.
                var next = result.Messages.Count > 0 ? now : result.NextPollAt ?? now + TimeSpan.FromSeconds(queue.Block.FrequencySeconds);
                await _queues.EnqueueAsync(queue.Id, batches, state, new PollRecord(now, next), cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Nothing was recorded: give the messages back so they are not lost.
                await GiveBackAsync(queue, source, batches.SelectMany(b => b.Handles).ToList());
                throw;
            }
        }
        finally
        {
            gate.Release();
        }

        // on_create: the tasks are durably recorded now, so the messages can go (a failure here is settled later).
        if (queue.Block.AckMode == "on_create" && batches.Count > 0)
            await SettleAsync(queue, batches.Select(b => new EndedBatch(b.Run.MessageKey!, queue.Id, b.Handles, Succeeded: true)).ToList(), cancellationToken);

        if (batches.Count > 0)
        {
            _scheduler.Nudge();
            var recordedAt = _time.GetUtcNow();
            for (var i = 0; i < batches.Count; i++)
            {
                _batchRuns[batches[i].Run.MessageKey!] = batches[i].Run.MesosId;
                RunTracing.Received(queue.Id, batches[i].Run.MessageKey!, batches[i].Run, chunks[i].Length, receivedAt, recordedAt);
            }

            _metrics.Created.Add(batches.Count, Tag(queue.Id));
            _scheduler.Metrics.StepSeconds.Record(Stopwatch.GetElapsedTime(received).TotalSeconds, Tag(queue.Id), new KeyValuePair<string, object?>("step", "recorded"));
            LogEnqueued(queue.Id, chunks.Sum(chunk => chunk.Length), batches.Count);
        }
    }

    private static KeyValuePair<string, object?> Tag(string queueId) => new("queue", queueId);

    /// <summary>Releases messages taken but not recorded, whatever else is being cancelled; a failure leaves them to their visibility timeout.</summary>
    private async Task GiveBackAsync(StoredQueue queue, IQueueSource source, List<string> handles)
    {
        if (source is not IAcknowledgingSource settle || handles.Count == 0)
            return;
        try
        {
            await settle.ReleaseAsync(queue, handles, CancellationToken.None);
            _metrics.Released.Add(handles.Count, Tag(queue.Id));
        }
        catch (Exception e)
        {
            LogSettleFailed(queue.Id, e.Message);
        }
    }

    /// <summary>Asks the source how many messages wait, at most every <see cref="BacklogInterval"/> per queue; a failure leaves the last value.</summary>
    private async Task MeasureBacklogAsync(StoredQueue queue, IQueueSource source, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (source is not IBacklogSource counted || _backlogMeasured.GetValueOrDefault(queue.Id) > now - BacklogInterval)
            return;
        _backlogMeasured[queue.Id] = now;
        try
        {
            if (await counted.BacklogAsync(queue, cancellationToken) is { } backlog)
                _metrics.SetBacklog(queue.Id, backlog);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The poll that follows meets the same fault and shows it on the queue.
        }
    }

    /// <summary>
    /// Leaves out messages the queue recorded before (a broker's redelivery after a crash between recording a task and
    /// settling its message). A redelivery of a message whose task is still under way takes its new handle into that
    /// task's batch, since brokers honour only the latest delivery's handle; one whose batch was acknowledged already
    /// (or any, under on_create) is acknowledged at once.
    /// </summary>
    private async Task<IReadOnlyList<QueueMessage>> DropDuplicatesAsync(StoredQueue queue, IQueueSource source, IReadOnlyList<QueueMessage> messages,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        var keys = messages.Where(m => m.DedupKey is not null).Select(m => m.DedupKey!).ToList();
        if (keys.Count == 0)
            return messages;
        var seen = await _queues.FindSeenAsync(queue.Id, keys, now, cancellationToken);
        var fresh = new List<QueueMessage>(messages.Count);
        var firstSight = new HashSet<string>(StringComparer.Ordinal);
        var acknowledge = new List<string>();
        foreach (var message in messages)
        {
            if (message.DedupKey is null)
            {
                fresh.Add(message);
            }
            else if (seen.TryGetValue(message.DedupKey, out var earlier))
            {
                _metrics.Duplicates.Add(1, Tag(queue.Id));
                LogDuplicate(queue.Id, message.DedupKey, earlier.MessageKey);
                if (message.Handle is null)
                    continue;
                if (earlier.Pending && queue.Block.AckMode != "on_create")
                    await _queues.ReplaceHandleAsync(queue.Id, message.DedupKey, message.Handle, cancellationToken);
                else
                    acknowledge.Add(message.Handle);
            }
            else if (firstSight.Add(message.DedupKey))
            {
                fresh.Add(message);
            }

            // The same message twice in one poll: the second delivery is left alone; the broker delivers it again
            // later, and then it is a redelivery of a recorded message.
        }

        if (acknowledge.Count > 0 && source is IAcknowledgingSource settle)
        {
            try
            {
                await settle.AckAsync(queue, acknowledge, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogSettleFailed(queue.Id, e.Message);
            }
        }

        return fresh;
    }

    private TaskRun NewRun(StoredQueue queue, QueueMessage[] messages, DateTimeOffset now)
    {
        var payload = string.Join(queue.Block.BatchSeparator, messages.Select(m => m.Payload));
        var definition = Payload.Apply(queue.Template with { Id = queue.Id }, payload);
        return TaskRun.CreateFirst(definition, _newId(), now) with { QueueId = queue.Id, MessageKey = _newId().ToString("N") };
    }

    /// <summary>Settles one page of ended batches; returns how many were listed, and how many of them settled.</summary>
    private async Task<(int Listed, int Settled)> SettleAsync(CancellationToken cancellationToken)
    {
        var settled = 0;
        var ended = await _queues.ListEndedBatchesAsync(SettlePage, cancellationToken);
        foreach (var group in ended.GroupBy(b => b.QueueId, StringComparer.Ordinal))
        {
            StoredQueue? queue;
            try
            {
                queue = await _queues.GetQueueAsync(group.Key, cancellationToken) is { } stored ? Usable(stored) : null;
            }
            catch (SecretReferenceException e)
            {
                LogSettleFailed(group.Key, e.Message);
                continue;
            }

            // Under on_create a message is done once its task exists, whatever became of the task.
            var batches = queue?.Block.AckMode == "on_create" ? group.Select(b => b with { Succeeded = true }).ToList() : group.ToList();
            settled += await SettleAsync(queue, batches, cancellationToken);
        }

        return (ended.Count, settled);
    }

    /// <summary>Returns how many of the batches were settled.</summary>
    private async Task<int> SettleAsync(StoredQueue? queue, IReadOnlyList<EndedBatch> batches, CancellationToken cancellationToken)
    {
        await _settling.WaitAsync(cancellationToken);
        try
        {
            return await SettleLockedAsync(queue, batches, cancellationToken);
        }
        finally
        {
            _settling.Release();
        }
    }

    /// <summary>
    /// Settles the batches at the source with one call for all acknowledgements and one for all releases, then marks
    /// them together (one commit); if a combined call fails, batch by batch, so one bad batch holds up no other.
    /// </summary>
    private async Task<int> SettleLockedAsync(StoredQueue? queue, IReadOnlyList<EndedBatch> batches, CancellationToken cancellationToken)
    {
        if (batches.Count == 0)
            return 0;
        var gate = RecordGate(batches[0].QueueId);
        await gate.WaitAsync(cancellationToken);
        try
        {
            return await SettleGatedAsync(queue, batches, cancellationToken);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<int> SettleGatedAsync(StoredQueue? queue, IReadOnlyList<EndedBatch> batches, CancellationToken cancellationToken)
    {
        var settled = 0;
        var source = queue is null ? null : _sources.GetValueOrDefault(queue.Block.Type ?? string.Empty) as IAcknowledgingSource;
        foreach (var outcome in batches.GroupBy(b => b.Succeeded))
        {
            var group = outcome.ToList();
            var started = _time.GetUtcNow();
            if (source is null || await TellSourceAsync(source, queue!, outcome.Key, group.SelectMany(b => b.Handles).ToList(), cancellationToken))
            {
                await _queues.SettleBatchesAsync(group.Select(b => b.MessageKey).ToList(), outcome.Key, cancellationToken);
                Settled(group, started);
                settled += group.Count;
                continue;
            }

            foreach (var batch in group)
            {
                started = _time.GetUtcNow();
                if (await TellSourceAsync(source, queue!, batch.Succeeded, batch.Handles, cancellationToken))
                {
                    await _queues.SettleBatchAsync(batch.MessageKey, batch.Succeeded, cancellationToken);
                    Settled([batch], started);
                    settled++;
                }
            }
        }

        return settled;
    }

    private void Settled(IReadOnlyList<EndedBatch> batches, DateTimeOffset started)
    {
        var settled = _time.GetUtcNow();
        foreach (var batch in batches)
        {
            _batchRuns.TryRemove(batch.MessageKey, out var runId);
            RunTracing.Settled(batch.QueueId, batch.MessageKey, runId, batch.Succeeded, started, settled);
        }
    }

    /// <summary>The source first, then the mark: a crash in between settles again, which the sources tolerate.</summary>
    private async Task<bool> TellSourceAsync(IAcknowledgingSource source, StoredQueue queue, bool succeeded, IReadOnlyList<string> handles, CancellationToken cancellationToken)
    {
        if (handles.Count == 0)
            return true;
        try
        {
            if (succeeded)
                await source.AckAsync(queue, handles, cancellationToken);
            else
                await source.ReleaseAsync(queue, handles, cancellationToken);
            (succeeded ? _metrics.Acknowledged : _metrics.Released).Add(handles.Count, Tag(queue.Id));
            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogSettleFailed(queue.Id, e.Message);
            return false;
        }
    }

    [LoggerMessage(5009, LogLevel.Information, "Queue {QueueId}: stopped during a poll; the {Messages} messages it took went back to the source")]
    private partial void LogGivenBack(string queueId, int messages);

    [LoggerMessage(5001, LogLevel.Information, "Queue {QueueId}: {Messages} messages became {Tasks} tasks")]
    private partial void LogEnqueued(string queueId, int messages, int tasks);

    [LoggerMessage(5002, LogLevel.Warning, "Queue {QueueId}: poll failed ({Failures} in a row), next try in {Seconds} s: {Message}")]
    private partial void LogSourceFailed(string queueId, int failures, double seconds, string message);

    [LoggerMessage(5003, LogLevel.Warning, "Queue {QueueId}: settling messages failed, tried again next pass: {Message}")]
    private partial void LogSettleFailed(string queueId, string message);

    [LoggerMessage(5005, LogLevel.Warning, "Queue {QueueId}: returned {Count} messages taken but never recorded (interrupted poll)")]
    private partial void LogRecovered(string queueId, int count);

    [LoggerMessage(5006, LogLevel.Warning, "Queue {QueueId}: message {DedupKey} was delivered again; it belongs to the task of batch {MessageKey} and makes no new task")]
    private partial void LogDuplicate(string queueId, string dedupKey, string messageKey);

    [LoggerMessage(5007, LogLevel.Warning, "Queue {QueueId}: renewing message leases failed, tried again at the next renewal: {Message}")]
    private partial void LogLeaseFailed(string queueId, string message);

    [LoggerMessage(5004, LogLevel.Error, "Queue poll pass failed")]
    private partial void LogPassFailed(Exception exception);
}
