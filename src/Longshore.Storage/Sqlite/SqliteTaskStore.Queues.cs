using System.Text.Json;
using Longshore.Core.Queues;
using Longshore.Core.Tasks;
using Microsoft.Data.Sqlite;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Sqlite;

/// <summary>Queues, their source state and message batches, beside the runs made from them.</summary>
public sealed partial class SqliteTaskStore : IQueueStore
{
    private static readonly string UnfinishedStates = InList(TaskStates.Active.Append(TaskState.WaitingOnOffers));

    public async Task<bool> CreateQueueAsync(StoredQueue queue, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) => await ExecuteAsync(connection, transaction, """
            INSERT INTO queues (id, template, block, created_at) VALUES ($id, $template, $block, $created) ON CONFLICT (id) DO NOTHING;
            """, cancellationToken, ("$id", queue.Id), ("$template", Json(queue.Template)), ("$block", Json(queue.Block)),
            ("$created", queue.CreatedAt.ToUnixTimeMilliseconds())) > 0, cancellationToken);

    public async Task<StoredQueue?> GetQueueAsync(string id, CancellationToken cancellationToken = default)
    {
        var queues = await QueryQueuesAsync("SELECT * FROM queues WHERE id = $id;", cancellationToken, ("$id", id));
        return queues.Count == 0 ? null : queues[0];
    }

    public Task<IReadOnlyList<StoredQueue>> ListQueuesAsync(CancellationToken cancellationToken = default) =>
        QueryQueuesAsync("SELECT * FROM queues ORDER BY created_at, id;", cancellationToken);

    public async Task<bool> UpdateQueueAsync(StoredQueue queue, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) => await ExecuteAsync(connection, transaction,
            "UPDATE queues SET template = $template, block = $block, next_poll_at = NULL WHERE id = $id;", cancellationToken,
            ("$id", queue.Id), ("$template", Json(queue.Template)), ("$block", Json(queue.Block))) > 0, cancellationToken);

    public async Task<bool> DeleteQueueAsync(string id, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            await ExecuteAsync(connection, transaction, "DELETE FROM queue_state WHERE queue_id = $id;", cancellationToken, ("$id", id));
            await ExecuteAsync(connection, transaction, "DELETE FROM queue_dedup WHERE queue_id = $id;", cancellationToken, ("$id", id));
            return await ExecuteAsync(connection, transaction, "DELETE FROM queues WHERE id = $id;", cancellationToken, ("$id", id)) > 0;
        }, cancellationToken);

    public async Task RecordPollAsync(string id, DateTimeOffset at, string? error, DateTimeOffset nextPollAt, CancellationToken cancellationToken = default) =>
        await WriteAsync((connection, transaction) => UpdatePollAsync(connection, transaction, id, at, error, nextPollAt, cancellationToken), cancellationToken);

    private static Task<int> UpdatePollAsync(SqliteConnection connection, SqliteTransaction transaction, string id, DateTimeOffset at, string? error,
        DateTimeOffset nextPollAt, CancellationToken cancellationToken) =>
        ExecuteAsync(connection, transaction, "UPDATE queues SET last_poll_at = $at, last_error = $error, next_poll_at = $next WHERE id = $id;", cancellationToken,
            ("$id", id), ("$at", at.ToUnixTimeMilliseconds()), ("$error", error), ("$next", nextPollAt.ToUnixTimeMilliseconds()));

    public async Task<IReadOnlyDictionary<string, string>> GetSourceStateAsync(string id, CancellationToken cancellationToken = default)
    {
        var state = new Dictionary<string, string>(StringComparer.Ordinal);
        await ReadAsync("SELECT key, value FROM queue_state WHERE queue_id = $id;", reader => state[reader.GetString(0)] = reader.GetString(1),
            cancellationToken, ("$id", id));
        return state;
    }

    public async Task EnqueueAsync(string id, IReadOnlyList<QueueBatch> batches, IReadOnlyDictionary<string, string> state, PollRecord? poll = null,
        CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            await using var insertRun = RunInserter(connection, transaction);
            await using var insertBatch = CreateCommand(connection, transaction,
                "INSERT INTO queue_batches (message_key, queue_id, handles, state) VALUES ($key, $queue, $handles, 'PENDING');",
                [("$key", null), ("$queue", id), ("$handles", null)]);
            foreach (var batch in batches)
            {
                await InsertRunAsync(insertRun, batch.Run, cancellationToken);
                insertBatch.Parameters["$key"].Value = batch.Run.MessageKey;
                insertBatch.Parameters["$handles"].Value = JsonSerializer.Serialize(batch.Handles);
                await insertBatch.ExecuteNonQueryAsync(cancellationToken);
                foreach (var entry in batch.DedupKeys)
                {
                    await ExecuteAsync(connection, transaction, """
                        INSERT INTO queue_dedup (queue_id, dedup_key, message_key, handle, expires_at) VALUES ($queue, $dedup, $key, $handle, $expires)
                        ON CONFLICT (queue_id, dedup_key) DO UPDATE SET message_key = excluded.message_key, handle = excluded.handle, expires_at = excluded.expires_at;
                        """, cancellationToken, ("$queue", id), ("$dedup", entry.Key), ("$key", batch.Run.MessageKey), ("$handle", entry.Handle),
                        ("$expires", (batch.Run.CreatedAt + QueueDedup.Window).ToUnixTimeMilliseconds()));
                }
            }

            if (batches.Count > 0)
            {
                await ExecuteAsync(connection, transaction, "DELETE FROM queue_dedup WHERE expires_at < $now;", cancellationToken,
                    ("$now", batches[0].Run.CreatedAt.ToUnixTimeMilliseconds()));
            }

            foreach (var (key, value) in state)
            {
                await ExecuteAsync(connection, transaction,
                    "INSERT INTO queue_state (queue_id, key, value) VALUES ($queue, $key, $value) ON CONFLICT (queue_id, key) DO UPDATE SET value = excluded.value;",
                    cancellationToken, ("$queue", id), ("$key", key), ("$value", value));
            }

            if (poll is { } polled)
                await UpdatePollAsync(connection, transaction, id, polled.At, null, polled.NextPollAt, cancellationToken);
            return true;
        }, cancellationToken);

    public async Task<(int Active, DateTimeOffset? OldestWaiting)> QueueLoadAsync(string id, CancellationToken cancellationToken = default)
    {
        (int, DateTimeOffset?) load = (0, null);
        // Both read the (queue_id, state) index only where it holds unfinished runs, never the queue's history.
        await ReadAsync($"""
            SELECT (SELECT COUNT(*) FROM runs WHERE queue_id = $id AND state IN ({UnfinishedStates})),
                   (SELECT created_at FROM runs WHERE queue_id = $id AND state = 'WAITING_ON_OFFERS' ORDER BY seq LIMIT 1);
            """, reader => load = (reader.GetInt32(0), reader.IsDBNull(1) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1))),
            cancellationToken, ("$id", id));
        return load;
    }

    public async Task<IReadOnlyList<EndedBatch>> ListEndedBatchesAsync(int limit, CancellationToken cancellationToken = default)
    {
        var ended = new List<EndedBatch>();
        // The outcome is written in the same transaction as the end of the batch's last run (one with no retry to come).
        await ReadAsync("""
            SELECT message_key, queue_id, handles, outcome FROM queue_batches
            WHERE state = 'PENDING' AND outcome IS NOT NULL
            LIMIT $limit;
            """, reader => ended.Add(ReadEndedBatch(reader)),
            cancellationToken, ("$limit", limit));
        return ended;
    }

    public async Task<IReadOnlySet<string>> PendingHandlesAsync(string id, CancellationToken cancellationToken = default)
    {
        var handles = new HashSet<string>(StringComparer.Ordinal);
        await ReadAsync("SELECT handles FROM queue_batches WHERE queue_id = $id AND state = 'PENDING';",
            reader => handles.UnionWith(ReadHandles(reader, 0)), cancellationToken, ("$id", id));
        return handles;
    }

    public async Task<bool> SettleBatchAsync(string messageKey, bool acknowledged, CancellationToken cancellationToken = default) =>
        await SettleBatchesAsync([messageKey], acknowledged, cancellationToken) > 0;

    /// <summary>All in one write of the single writer: one savepoint and one commit for the lot.</summary>
    public async Task<int> SettleBatchesAsync(IReadOnlyCollection<string> messageKeys, bool acknowledged, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            var count = 0;
            foreach (var messageKey in messageKeys)
            {
                var settled = await ExecuteAsync(connection, transaction,
                    "UPDATE queue_batches SET state = $state WHERE message_key = $key AND state = 'PENDING';", cancellationToken,
                    ("$key", messageKey), ("$state", acknowledged ? "ACKED" : "RELEASED")) > 0;
                if (settled && !acknowledged)
                    await ExecuteAsync(connection, transaction, "DELETE FROM queue_dedup WHERE message_key = $key;", cancellationToken, ("$key", messageKey));
                count += settled ? 1 : 0;
            }

            return count;
        }, cancellationToken);

    public async Task<IReadOnlyDictionary<string, SeenMessage>> FindSeenAsync(string id, IReadOnlyCollection<string> keys, DateTimeOffset now,
        CancellationToken cancellationToken = default)
    {
        var seen = new Dictionary<string, SeenMessage>(StringComparer.Ordinal);
        foreach (var chunk in keys.Distinct(StringComparer.Ordinal).Chunk(500))
        {
            var parameters = chunk.Select((key, i) => ($"$k{i}", (object?)key)).Append(("$id", id)).Append(("$now", now.ToUnixTimeMilliseconds())).ToArray();
            await ReadAsync($"""
                SELECT d.dedup_key, d.message_key, d.handle, b.state FROM queue_dedup d LEFT JOIN queue_batches b ON b.message_key = d.message_key
                WHERE d.queue_id = $id AND d.expires_at > $now AND d.dedup_key IN ({string.Join(", ", chunk.Select((_, i) => $"$k{i}"))});
                """, reader => seen[reader.GetString(0)] = new SeenMessage(reader.GetString(1), Nullable(reader, "handle", reader.GetString),
                    !reader.IsDBNull(3) && reader.GetString(3) == "PENDING"), cancellationToken, parameters);
        }

        return seen;
    }

    public async Task ReplaceHandleAsync(string id, string dedupKey, string newHandle, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            string? messageKey = null, oldHandle = null, handles = null;
            using (var command = CreateCommand(connection, transaction, """
                SELECT d.message_key, d.handle, b.handles FROM queue_dedup d JOIN queue_batches b ON b.message_key = d.message_key
                WHERE d.queue_id = $id AND d.dedup_key = $dedup AND b.state = 'PENDING';
                """, [("$id", id), ("$dedup", dedupKey)]))
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                if (await reader.ReadAsync(cancellationToken))
                    (messageKey, oldHandle, handles) = (reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2));
            }

            if (messageKey is null)
                return false;
            await ExecuteAsync(connection, transaction, "UPDATE queue_batches SET handles = $handles WHERE message_key = $key;", cancellationToken,
                ("$key", messageKey), ("$handles", ReplaceHandle(handles!, oldHandle, newHandle)));
            await ExecuteAsync(connection, transaction, "UPDATE queue_dedup SET handle = $handle WHERE queue_id = $id AND dedup_key = $dedup;", cancellationToken,
                ("$id", id), ("$dedup", dedupKey), ("$handle", newHandle));
            return true;
        }, cancellationToken);

    private async Task<IReadOnlyList<StoredQueue>> QueryQueuesAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        var queues = new List<StoredQueue>();
        await ReadAsync(sql, reader => queues.Add(ReadQueue(reader)), cancellationToken, parameters);
        return queues;
    }
}
