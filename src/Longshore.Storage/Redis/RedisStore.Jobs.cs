using System.Text.Json;
using Longshore.Core.Jobs;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using StackExchange.Redis;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Redis;

/// <summary>Jobs, queues and the lease, each a hash guarded by the same conditional transactions as runs.</summary>
public sealed partial class RedisStore
{
    // Past the window, so the stored expires_at (on the instances' clock) and not Redis's own clock decides what is seen.
    private static readonly TimeSpan DedupTtlMargin = TimeSpan.FromHours(1);

    public async Task<bool> CreateJobAsync(Job job, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var existing = await GetJobAsync(job.Id, cancellationToken);
            if (existing is { State: JobState.Running })
                return false;
            var stored = existing is null ? job with { Version = 1 } : job with { Generation = existing.Generation + 1, Version = existing.Version + 1 };
            if (await TryCommitAsync(tx =>
            {
                tx.AddCondition(existing is null ? Condition.KeyNotExists(_keys.Job(job.Id)) : Condition.HashEqual(_keys.Job(job.Id), "version", existing.Version));
                WriteJob(tx, stored);
            }))
                return true;
        }
    }

    public async Task<Job?> GetJobAsync(string id, CancellationToken cancellationToken = default)
    {
        var entries = await _db.HashGetAllAsync(_keys.Job(id));
        return entries.Length == 0 ? null : ReadJob(entries);
    }

    public async Task<IReadOnlyList<Job>> ListJobsAsync(CancellationToken cancellationToken = default)
    {
        var jobs = new List<Job>();
        foreach (var id in await _db.SortedSetRangeByRankAsync(_keys.Jobs))
        {
            if (await GetJobAsync((string)id!, cancellationToken) is { } job)
                jobs.Add(job);
        }

        return jobs;
    }

    public async Task<bool> TryUpdateJobAsync(Job job, long expectedVersion, CancellationToken cancellationToken = default)
    {
        var created = await _db.HashGetAsync(_keys.Job(job.Id), "created_at");
        if (created.IsNull)
            return false;
        return await TryCommitAsync(tx =>
        {
            tx.AddCondition(Condition.HashEqual(_keys.Job(job.Id), "version", expectedVersion));
            WriteJob(tx, job with { Version = expectedVersion + 1, CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds((long)created) });
        });
    }

    public async Task<IReadOnlyList<TaskRun>> ListJobRunsAsync(string jobId, int endedLimit, CancellationToken cancellationToken = default)
    {
        var runs = await ReadRunsAsync(await _db.SortedSetRangeByRankAsync(_keys.ByJob(jobId), order: Order.Descending));
        return [.. runs.Where(run => !run.State.IsTerminal()), .. runs.Where(run => run.State.IsTerminal()).Take(endedLimit)];
    }

    public async Task<bool> InsertReplicaAsync(TaskRun run, string? replaces, CancellationToken cancellationToken = default)
    {
        var seq = await _db.StringIncrementAsync(_keys.Seq);
        while (true)
        {
            TaskRun? old = null;
            if (replaces is not null)
            {
                old = await GetAsync(replaces, cancellationToken);
                if (old is null || !old.State.IsTerminal() || old.RetriedAs is not null)
                {
                    await CheckFenceAsync();
                    return false;
                }
            }

            if (await TryCommitAsync(tx =>
            {
                if (old is not null)
                {
                    tx.AddCondition(Condition.HashEqual(_keys.Run(old.MesosId), "state", old.State.ToWire()));
                    tx.AddCondition(Condition.HashNotExists(_keys.Run(old.MesosId), "retried_as"));
                    _ = tx.HashSetAsync(_keys.Run(old.MesosId), "retried_as", run.MesosId);
                }

                tx.AddCondition(Condition.KeyNotExists(_keys.Run(run.MesosId)));
                AddRun(tx, run, seq);
            }))
                return true;
        }
    }

    public async Task<bool> CreateQueueAsync(StoredQueue queue, CancellationToken cancellationToken = default) =>
        await TryCommitAsync(tx =>
        {
            tx.AddCondition(Condition.KeyNotExists(_keys.Queue(queue.Id)));
            _ = tx.HashSetAsync(_keys.Queue(queue.Id), [new("id", queue.Id), new("template", Json(queue.Template)), new("block", Json(queue.Block)),
                new("created_at", queue.CreatedAt.ToUnixTimeMilliseconds())]);
            _ = tx.SortedSetAddAsync(_keys.Queues, queue.Id, queue.CreatedAt.ToUnixTimeMilliseconds());
        });

    public async Task<StoredQueue?> GetQueueAsync(string id, CancellationToken cancellationToken = default)
    {
        var entries = await _db.HashGetAllAsync(_keys.Queue(id));
        return entries.Length == 0 ? null : ReadQueue(entries);
    }

    public async Task<IReadOnlyList<StoredQueue>> ListQueuesAsync(CancellationToken cancellationToken = default)
    {
        var queues = new List<StoredQueue>();
        foreach (var id in await _db.SortedSetRangeByRankAsync(_keys.Queues))
        {
            if (await GetQueueAsync((string)id!, cancellationToken) is { } queue)
                queues.Add(queue);
        }

        return queues;
    }

    public async Task<bool> UpdateQueueAsync(StoredQueue queue, CancellationToken cancellationToken = default) =>
        await TryCommitAsync(tx =>
        {
            tx.AddCondition(Condition.KeyExists(_keys.Queue(queue.Id)));
            _ = tx.HashSetAsync(_keys.Queue(queue.Id), [new("template", Json(queue.Template)), new("block", Json(queue.Block))]);
            _ = tx.HashDeleteAsync(_keys.Queue(queue.Id), "next_poll_at");
        });

    public async Task<bool> DeleteQueueAsync(string id, CancellationToken cancellationToken = default)
    {
        var dedup = (await _db.SortedSetRangeByRankAsync(_keys.DedupIndex(id))).Select(key => (RedisKey)_keys.Dedup(id, (string)key!));
        return await TryCommitAsync(tx =>
        {
            tx.AddCondition(Condition.KeyExists(_keys.Queue(id)));
            _ = tx.KeyDeleteAsync([_keys.Queue(id), _keys.QueueState(id), _keys.DedupIndex(id), .. dedup]);
            _ = tx.SortedSetRemoveAsync(_keys.Queues, id);
        });
    }

    public async Task RecordPollAsync(string id, DateTimeOffset at, string? error, DateTimeOffset nextPollAt, CancellationToken cancellationToken = default) =>
        await TryCommitAsync(tx =>
        {
            tx.AddCondition(Condition.KeyExists(_keys.Queue(id)));
            _ = tx.HashSetAsync(_keys.Queue(id), [new("last_poll_at", at.ToUnixTimeMilliseconds()), new("next_poll_at", nextPollAt.ToUnixTimeMilliseconds())]);
            _ = error is null ? tx.HashDeleteAsync(_keys.Queue(id), "last_error") : tx.HashSetAsync(_keys.Queue(id), "last_error", error);
        });

    public async Task<IReadOnlyDictionary<string, string>> GetSourceStateAsync(string id, CancellationToken cancellationToken = default) =>
        (await _db.HashGetAllAsync(_keys.QueueState(id))).ToDictionary(e => (string)e.Name!, e => (string)e.Value!, StringComparer.Ordinal);

    public async Task EnqueueAsync(string id, IReadOnlyList<QueueBatch> batches, IReadOnlyDictionary<string, string> state, PollRecord? poll = null,
        CancellationToken cancellationToken = default)
    {
        var seqs = new List<long>();
        foreach (var _ in batches)
            seqs.Add(await _db.StringIncrementAsync(_keys.Seq));
        var committed = await TryCommitAsync(tx =>
        {
            for (var i = 0; i < batches.Count; i++)
            {
                var run = batches[i].Run;
                var key = run.MessageKey!;
                tx.AddCondition(Condition.KeyNotExists(_keys.Run(run.MesosId)));
                tx.AddCondition(Condition.KeyNotExists(_keys.Batch(key)));
                AddRun(tx, run, seqs[i]);
                _ = tx.HashSetAsync(_keys.Batch(key), [new("queue_id", id), new("handles", JsonSerializer.Serialize(batches[i].Handles)), new("state", "PENDING")]);
                _ = tx.SetAddAsync(_keys.PendingBatches, key);
                _ = tx.SetAddAsync(_keys.QueuePending(id), key);
                var expires = (run.CreatedAt + QueueDedup.Window).ToUnixTimeMilliseconds();
                foreach (var entry in batches[i].DedupKeys)
                {
                    var dedup = _keys.Dedup(id, entry.Key);
                    _ = tx.KeyDeleteAsync(dedup);
                    _ = tx.HashSetAsync(dedup, [new("message_key", key), new("handle", entry.Handle), new("expires_at", expires)]);
                    // A relative TTL: Redis judges expiry by its own clock, which need not agree with this instance's (or a
                    // test's) idea of now. The stored expires_at decides what counts as seen; the TTL only frees the memory later.
                    _ = tx.KeyExpireAsync(dedup, QueueDedup.Window + DedupTtlMargin);
                    _ = tx.SortedSetAddAsync(_keys.DedupIndex(id), entry.Key, expires);
                    _ = tx.SetAddAsync(_keys.DedupOfBatch(key), entry.Key);
                }
            }

            if (batches.Count > 0)
                _ = tx.SortedSetRemoveRangeByScoreAsync(_keys.DedupIndex(id), double.NegativeInfinity, batches[0].Run.CreatedAt.ToUnixTimeMilliseconds(), Exclude.Stop);

            if (state.Count > 0)
                _ = tx.HashSetAsync(_keys.QueueState(id), [.. state.Select(pair => new HashEntry(pair.Key, pair.Value))]);
        });
        if (!committed)
            throw new InvalidOperationException($"queue {id}: a batch or run of this enqueue exists already");
        // Right after, not inside: the poll's fields may only be written while the queue exists, a condition that would
        // also refuse the runs of a queue deleted meanwhile (the SQL stores' UPDATE simply finds no row).
        if (poll is { } polled)
            await RecordPollAsync(id, polled.At, null, polled.NextPollAt, cancellationToken);
    }

    public async Task<(int Active, DateTimeOffset? OldestWaiting)> QueueLoadAsync(string id, CancellationToken cancellationToken = default)
    {
        var runs = (await ReadRunsAsync(await _db.SortedSetRangeByRankAsync(_keys.QueueOpen(id)))).Where(run => !run.State.IsTerminal()).ToList();
        var waiting = runs.Where(run => run.State == TaskState.WaitingOnOffers).Select(run => (DateTimeOffset?)run.CreatedAt).Min();
        return (runs.Count, waiting);
    }

    public async Task<IReadOnlyList<EndedBatch>> ListEndedBatchesAsync(int limit, CancellationToken cancellationToken = default)
    {
        var ended = new List<EndedBatch>();
        foreach (var member in await _db.SetMembersAsync(_keys.PendingBatches))
        {
            var key = (string)member!;
            var latest = await _db.SortedSetRangeByRankAsync(_keys.ByMessage(key), 0, 0, Order.Descending);
            if (latest.Length == 0 || await GetAsync((string)latest[0]!, cancellationToken) is not { } run || !run.State.IsTerminal() || run.RetriedAs is not null)
                continue;
            var batch = await _db.HashGetAsync(_keys.Batch(key), ["queue_id", "handles"]);
            ended.Add(new EndedBatch(key, (string)batch[0]!, JsonSerializer.Deserialize<List<string>>((string)batch[1]!)!, run.State == TaskState.Finished));
            if (ended.Count >= limit)
                break;
        }

        return ended;
    }

    public async Task<IReadOnlySet<string>> PendingHandlesAsync(string id, CancellationToken cancellationToken = default)
    {
        var handles = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in await _db.SetMembersAsync(_keys.QueuePending(id)))
        {
            var json = await _db.HashGetAsync(_keys.Batch((string)key!), "handles");
            if (!json.IsNull)
                handles.UnionWith(JsonSerializer.Deserialize<List<string>>((string)json!)!);
        }

        return handles;
    }

    public async Task<bool> SettleBatchAsync(string messageKey, bool acknowledged, CancellationToken cancellationToken = default)
    {
        var queueId = await _db.HashGetAsync(_keys.Batch(messageKey), "queue_id");
        if (queueId.IsNull)
            return false;
        var queue = (string)queueId!;
        var dedup = new List<RedisValue>();
        foreach (var key in acknowledged ? [] : await _db.SetMembersAsync(_keys.DedupOfBatch(messageKey)))
        {
            if (await _db.HashGetAsync(_keys.Dedup(queue, (string)key!), "message_key") == messageKey)
                dedup.Add(key);
        }

        return await TryCommitAsync(tx =>
        {
            tx.AddCondition(Condition.HashEqual(_keys.Batch(messageKey), "state", "PENDING"));
            _ = tx.HashSetAsync(_keys.Batch(messageKey), "state", acknowledged ? "ACKED" : "RELEASED");
            _ = tx.SetRemoveAsync(_keys.PendingBatches, messageKey);
            _ = tx.SetRemoveAsync(_keys.QueuePending(queue), messageKey);
            // A released message is meant to run again: forget its keys (those a later batch took over stay).
            foreach (var key in dedup)
            {
                _ = tx.KeyDeleteAsync(_keys.Dedup(queue, (string)key!));
                _ = tx.SortedSetRemoveAsync(_keys.DedupIndex(queue), key);
            }
        });
    }

    public async Task<IReadOnlyDictionary<string, SeenMessage>> FindSeenAsync(string id, IReadOnlyCollection<string> keys, DateTimeOffset now,
        CancellationToken cancellationToken = default)
    {
        var seen = new Dictionary<string, SeenMessage>(StringComparer.Ordinal);
        foreach (var key in keys.Distinct(StringComparer.Ordinal))
        {
            var values = await _db.HashGetAsync(_keys.Dedup(id, key), ["message_key", "handle", "expires_at"]);
            if (values[0].IsNull || (long)values[2] <= now.ToUnixTimeMilliseconds())
                continue;
            var state = await _db.HashGetAsync(_keys.Batch((string)values[0]!), "state");
            seen[key] = new SeenMessage((string)values[0]!, (string?)values[1], state == "PENDING");
        }

        return seen;
    }

    public async Task ReplaceHandleAsync(string id, string dedupKey, string newHandle, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var values = await _db.HashGetAsync(_keys.Dedup(id, dedupKey), ["message_key", "handle"]);
            if (values[0].IsNull)
                return;
            var batch = await _db.HashGetAsync(_keys.Batch((string)values[0]!), ["state", "handles"]);
            if (batch[0] != "PENDING")
                return;
            if (await TryCommitAsync(tx =>
            {
                tx.AddCondition(Condition.HashEqual(_keys.Batch((string)values[0]!), "state", "PENDING"));
                tx.AddCondition(Condition.HashEqual(_keys.Batch((string)values[0]!), "handles", batch[1]));
                tx.AddCondition(Condition.HashEqual(_keys.Dedup(id, dedupKey), "message_key", values[0]));
                _ = tx.HashSetAsync(_keys.Batch((string)values[0]!), "handles", ReplaceHandle((string)batch[1]!, (string?)values[1], newHandle));
                _ = tx.HashSetAsync(_keys.Dedup(id, dedupKey), "handle", newHandle);
            }))
                return;
        }
    }

    public async Task<Lease> TryAcquireLeaseAsync(string holder, TimeSpan duration, DateTimeOffset now, bool takeOver = false, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var current = await GetLeaseAsync(cancellationToken);
            if (Fencing.Decide(current, holder, duration, now, takeOver) is not { } next)
                return current!;
            if (await TryCommitAsync(tx =>
            {
                // Decided on the lease as read: it commits only if nobody changed it since.
                tx.AddCondition(current is null ? Condition.KeyNotExists(_keys.Lease) : Condition.HashEqual(_keys.Lease, "expires_at", current.ExpiresAt.ToUnixTimeMilliseconds()));
                if (current is not null)
                    tx.AddCondition(Condition.HashEqual(_keys.Lease, "term", current.Term));
                _ = tx.HashSetAsync(_keys.Lease, [new("holder", next.Holder), new("term", next.Term), new("expires_at", next.ExpiresAt.ToUnixTimeMilliseconds())]);
            }, fenced: false))
                return next;
        }
    }

    public async Task<Lease?> GetLeaseAsync(CancellationToken cancellationToken = default)
    {
        var values = await _db.HashGetAsync(_keys.Lease, ["holder", "term", "expires_at"]);
        return values[0].IsNull ? null : new Lease((string)values[0]!, (long)values[1], DateTimeOffset.FromUnixTimeMilliseconds((long)values[2]));
    }

    public async Task<string?> GetSettingAsync(string key, CancellationToken cancellationToken = default) =>
        await _db.HashGetAsync(_keys.Meta, SettingKey(key)) is { IsNull: false } value ? (string)value! : null;

    public async Task SetSettingAsync(string key, string? value, CancellationToken cancellationToken = default) =>
        await TryCommitAsync(tx => _ = value is null ? tx.HashDeleteAsync(_keys.Meta, SettingKey(key)) : tx.HashSetAsync(_keys.Meta, SettingKey(key), value));

    public async Task ReleaseLeaseAsync(string holder, long term, CancellationToken cancellationToken = default) =>
        await TryCommitAsync(tx =>
        {
            tx.AddCondition(Condition.HashEqual(_keys.Lease, "holder", holder));
            tx.AddCondition(Condition.HashEqual(_keys.Lease, "term", term));
            _ = tx.HashSetAsync(_keys.Lease, "expires_at", 0);
        }, fenced: false);

    private void WriteJob(ITransaction tx, Job job)
    {
        _ = tx.HashSetAsync(_keys.Job(job.Id), [.. JobParameters(job).Select(p => new HashEntry(p.Name == "at" ? "updated_at" : p.Name, Value(p.Value))),
            new("version", job.Version), new("created_at", job.CreatedAt.ToUnixTimeMilliseconds())]);
        _ = tx.SortedSetAddAsync(_keys.Jobs, job.Id, job.CreatedAt.ToUnixTimeMilliseconds());
    }

    private static Job ReadJob(HashEntry[] entries)
    {
        var row = entries.ToDictionary(e => (string)e.Name!, e => e.Value, StringComparer.Ordinal);
        return new Job
        {
            Id = (string)row["id"]!,
            Definition = JsonSerializer.Deserialize<JobDefinition>((string)row["definition"]!, TaskDefinitionJson.Options)!,
            State = (string)row["state"]! == "STOPPED" ? JobState.Stopped : JobState.Running,
            Generation = (int)row["generation"],
            Version = (long)row["version"],
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds((long)row["created_at"]),
            UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds((long)row["updated_at"]),
        };
    }

    private static StoredQueue ReadQueue(HashEntry[] entries)
    {
        var row = entries.ToDictionary(e => (string)e.Name!, e => e.Value, StringComparer.Ordinal);
        DateTimeOffset? Time(string name) => row.TryGetValue(name, out var value) && !value.IsNull ? DateTimeOffset.FromUnixTimeMilliseconds((long)value) : null;
        return new StoredQueue
        {
            Id = (string)row["id"]!,
            Template = JsonSerializer.Deserialize<TaskDefinition>((string)row["template"]!, TaskDefinitionJson.Options)!,
            Block = JsonSerializer.Deserialize<QueueBlock>((string)row["block"]!, TaskDefinitionJson.Options)!,
            CreatedAt = Time("created_at")!.Value,
            LastPollAt = Time("last_poll_at"),
            LastError = row.TryGetValue("last_error", out var error) ? (string?)error : null,
            NextPollAt = Time("next_poll_at"),
        };
    }
}
