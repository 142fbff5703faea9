using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Longshore.Core.Execution;
using Longshore.Core.Jobs;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Storage.Relational;
using Npgsql;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Postgres;

/// <summary>
/// The shared store for several instances: one PostgreSQL database (or schema, through <c>Search Path</c>). Every write is
/// one transaction; transitions are <c>UPDATE … WHERE state IN (expected)</c>, which PostgreSQL re-checks under the row
/// lock, so of two concurrent writers exactly one moves a run. A fenced write first takes a share lock on the lease row
/// and compares the term: a leader change (an update of that row) waits for it, or it sees the new term and is refused.
/// </summary>
public sealed partial class PostgresStore : IStateStore
{
    private static readonly string ActiveStates = InList(TaskStates.Active);
    private static readonly string TerminalStates = InList(TaskStates.Terminal);
    private const string RunColumns = "seq, mesos_id, family_id, attempt, state, definition, task_retries_left, system_retries_left, not_before, created_at, staged_at, started_at, finished_at, updated_at, exit_code, reason, agent, container_id, retry_of, retried_as, job_id, job_group, job_generation, queue_id, message_key";

    /// <summary>Connections per instance when the connection string sets no <c>Maximum Pool Size</c>.</summary>
    public const int DefaultMaxPoolSize = 16;

    private readonly NpgsqlDataSource _dataSource;

    // The lease has connections of its own: a renewal that waited behind a busy pool (a flood of API writes) could miss
    // its lease and make the leader step down for nothing.
    private readonly NpgsqlDataSource _leaseSource;

    private PostgresStore(NpgsqlDataSource dataSource, NpgsqlDataSource leaseSource, string description)
    {
        _dataSource = dataSource;
        _leaseSource = leaseSource;
        _transitions = TransitionCombiner();
        _inserts = InsertCombiner();
        Description = description;
    }

    public string InstanceId { get; private set; } = string.Empty;

    public string Description { get; }

    /// <summary>The connection string without its password, for logs and <c>/healthz</c>.</summary>
    public static string Redact(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Password = null };
        return "postgres:" + builder.ConnectionString;
    }

    /// <summary>How long one of this store's transactions may wait on its client when nobody says otherwise.</summary>
    public static readonly TimeSpan DefaultStalledTransactionLimit = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The connection string this store's sessions use. Every transaction here is a few statements sent back to back, so
    /// one that waits on its client for longer than <paramref name="stalledTransactionLimit"/> belongs to a frozen or
    /// partitioned instance: the server ends that session (<c>idle_in_transaction_session_timeout</c>) and its locks go
    /// with it. Without that, a leader frozen inside a fenced write keeps its share lock on the lease row and no other
    /// instance can take over for as long as it stays frozen.
    /// </summary>
    public static string SessionConnectionString(string connectionString, TimeSpan stalledTransactionLimit)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // Several instances share one server's connection slots (100 by default): keep each instance's pool small unless told otherwise.
        if (!connectionString.Contains("Pool Size", StringComparison.OrdinalIgnoreCase))
            builder.MaxPoolSize = DefaultMaxPoolSize;
        var limit = string.Create(CultureInfo.InvariantCulture, $"-c idle_in_transaction_session_timeout={Math.Max(1, (long)stalledTransactionLimit.TotalMilliseconds)}");
        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? limit : builder.Options + " " + limit;
        return builder.ConnectionString;
    }

    /// <summary>
    /// Connects, brings the schema up to date and reads (or creates) the store's instance id. A transaction stalled on this
    /// client longer than <paramref name="stalledTransactionLimit"/> is ended by the server (see <see cref="SessionConnectionString"/>).
    /// </summary>
    public static async Task<PostgresStore> OpenAsync(string connectionString, TimeSpan? stalledTransactionLimit = null, CancellationToken cancellationToken = default)
    {
        var session = SessionConnectionString(connectionString, stalledTransactionLimit ?? DefaultStalledTransactionLimit);
        var store = new PostgresStore(NpgsqlDataSource.Create(session),
            NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(session) { MaxPoolSize = 2, MinPoolSize = 1 }.ConnectionString), Redact(connectionString));
        try
        {
            await MigrateAsync(connectionString, cancellationToken);
            await store.ExecuteAsync("INSERT INTO meta (key, value) VALUES ('instance_id', @v) ON CONFLICT (key) DO NOTHING;", cancellationToken,
                ("v", Guid.NewGuid().ToString("N")[..12]));
            store.InstanceId = (string)(await store.ScalarAsync("SELECT value FROM meta WHERE key = 'instance_id';", cancellationToken))!;
            return store;
        }
        catch
        {
            await store.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Runs once at open, on a connection of its own without the stalled-transaction limit: a migration is one long
    /// transaction, and under load the client may pause inside it for longer than a short lease's renewal interval.
    /// </summary>
    private static async Task MigrateAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await Command(connection, transaction, "SELECT pg_advisory_xact_lock(hashtext(current_schema()));", []).ExecuteNonQueryAsync(cancellationToken);
        await Command(connection, transaction, "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);", []).ExecuteNonQueryAsync(cancellationToken);
        var version = Convert.ToInt32(await Command(connection, transaction, "SELECT COALESCE(MAX(version), 0) FROM schema_version;", []).ExecuteScalarAsync(cancellationToken),
            CultureInfo.InvariantCulture);
        if (version > PostgresMigrations.Steps.Length)
            throw new InvalidOperationException($"The database has schema version {version}, newer than this Longshore knows ({PostgresMigrations.Steps.Length}); use a newer Longshore.");
        for (var step = version; step < PostgresMigrations.Steps.Length; step++)
        {
            await Command(connection, transaction, PostgresMigrations.Steps[step], []).ExecuteNonQueryAsync(cancellationToken);
            await Command(connection, transaction, "INSERT INTO schema_version (version) VALUES (@v);", [("v", step + 1)]).ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<TaskRun?> GetAsync(string mesosId, CancellationToken cancellationToken = default)
    {
        var runs = await QueryRunsAsync($"SELECT {RunColumns} FROM runs WHERE mesos_id = @id;", cancellationToken, ("id", mesosId));
        return runs.Count == 0 ? null : runs[0];
    }

    public Task<IReadOnlyList<TaskRun>> ListAsync(RunQuery query, CancellationToken cancellationToken = default)
    {
        var (sql, parameters) = ListSql('@', RunColumns, query);
        return QueryRunsAsync(sql, cancellationToken, parameters);
    }

    public Task<IReadOnlyList<TaskRun>> ListDueAsync(DateTimeOffset now, int limit, IReadOnlyCollection<string> skipFamilies, CancellationToken cancellationToken = default) =>
        QueryRunsAsync($"""
            SELECT {RunColumns} FROM runs WHERE state = 'WAITING_ON_OFFERS' AND not_before <= @now AND NOT (family_id = ANY(@skip))
            ORDER BY seq LIMIT @limit;
            """, cancellationToken, ("now", now.ToUnixTimeMilliseconds()), ("limit", limit), ("skip", skipFamilies.ToArray()));

    public Task<IReadOnlyList<TaskRun>> ListActiveAsync(CancellationToken cancellationToken = default) =>
        QueryRunsAsync($"SELECT {RunColumns} FROM runs WHERE state IN ({ActiveStates}) ORDER BY seq;", cancellationToken);

    public Task<IReadOnlyDictionary<string, int>> CountActiveByFamilyAsync(CancellationToken cancellationToken = default) =>
        RunRows.CountActiveByFamilyAsync(ReadAsync, cancellationToken);

    public Task<IReadOnlyDictionary<TaskState, long>> CountByStateAsync(CancellationToken cancellationToken = default) =>
        RunRows.CountByStateAsync(ReadAsync, cancellationToken);

    public async Task<DateTimeOffset?> NextDueAsync(CancellationToken cancellationToken = default) =>
        await ScalarAsync("SELECT MIN(not_before) FROM runs WHERE state = 'WAITING_ON_OFFERS';", cancellationToken) is long ms
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms)
            : null;

    public async Task<IReadOnlyList<ActivityBucket>> ActivityAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        var buckets = new SortedDictionary<long, (int Launches, int Finished, int Failures)>();
        var from = since.ToUnixTimeMilliseconds();
        await ReadAsync("SELECT staged_at / 60000, COUNT(*)::int FROM runs WHERE staged_at >= @since GROUP BY 1;",
            reader => buckets[reader.GetInt64(0)] = buckets.GetValueOrDefault(reader.GetInt64(0)) with { Launches = reader.GetInt32(1) },
            cancellationToken, ("since", from));
        await ReadAsync("""
            SELECT finished_at / 60000, COUNT(*) FILTER (WHERE state = 'TASK_FINISHED')::int, COUNT(*) FILTER (WHERE state <> 'TASK_FINISHED')::int
            FROM runs WHERE finished_at >= @since GROUP BY 1;
            """,
            reader => buckets[reader.GetInt64(0)] = buckets.GetValueOrDefault(reader.GetInt64(0)) with { Finished = reader.GetInt32(1), Failures = reader.GetInt32(2) },
            cancellationToken, ("since", from));
        return buckets.Select(pair => new ActivityBucket(DateTimeOffset.FromUnixTimeMilliseconds(pair.Key * 60000), pair.Value.Launches, pair.Value.Finished, pair.Value.Failures)).ToList();
    }

    /// <remarks>
    /// The next transaction id the server will hand out: it moves with every write transaction of every instance (and of
    /// anything else in the database, which only costs a spare refresh), without a write of its own.
    /// </remarks>
    public async Task<DateTimeOffset> GetServerTimeAsync(CancellationToken cancellationToken = default) =>
        new((DateTime)(await ScalarAsync("SELECT clock_timestamp();", cancellationToken))!);

    public async Task<long> ChangeMarkAsync(CancellationToken cancellationToken = default) =>
        (long)(await ScalarAsync("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint;", cancellationToken))!;

    public async Task<TaskLogs?> GetLogsAsync(string mesosId, CancellationToken cancellationToken = default)
    {
        TaskLogs? logs = null;
        await ReadAsync("SELECT stdout, stderr, truncated FROM run_logs WHERE mesos_id = @id;",
            reader => logs = new TaskLogs(reader.GetString(0), reader.GetString(1), reader.GetBoolean(2)), cancellationToken, ("id", mesosId));
        return logs;
    }

    public async Task<bool> DeleteTerminalAsync(string mesosId, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            var deleted = await Command(connection, transaction, $"DELETE FROM runs WHERE mesos_id = @id AND state IN ({TerminalStates});", [("id", mesosId)])
                .ExecuteNonQueryAsync(cancellationToken);
            if (deleted > 0)
                await Command(connection, transaction, "DELETE FROM run_logs WHERE mesos_id = @id;", [("id", mesosId)]).ExecuteNonQueryAsync(cancellationToken);
            return deleted > 0;
        }, cancellationToken);

    public async Task<bool> CreateJobAsync(Job job, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) => await Command(connection, transaction, """
            INSERT INTO jobs (id, definition, state, generation, version, created_at, updated_at)
            VALUES (@id, @definition, @state, @generation, 1, @at, @at)
            ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, state = excluded.state,
                generation = jobs.generation + 1, version = jobs.version + 1, created_at = excluded.created_at, updated_at = excluded.updated_at
            WHERE jobs.state = 'STOPPED';
            """, JobParameters(job)).ExecuteNonQueryAsync(cancellationToken) > 0, cancellationToken);

    public async Task<Job?> GetJobAsync(string id, CancellationToken cancellationToken = default)
    {
        var jobs = await QueryJobsAsync("SELECT * FROM jobs WHERE id = @id;", cancellationToken, ("id", id));
        return jobs.Count == 0 ? null : jobs[0];
    }

    public Task<IReadOnlyList<Job>> ListJobsAsync(CancellationToken cancellationToken = default) =>
        QueryJobsAsync("SELECT * FROM jobs ORDER BY created_at, id;", cancellationToken);

    public async Task<bool> TryUpdateJobAsync(Job job, long expectedVersion, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) => await Command(connection, transaction, """
            UPDATE jobs SET definition = @definition, state = @state, generation = @generation, version = version + 1, updated_at = @at
            WHERE id = @id AND version = @expected;
            """, [.. JobParameters(job), ("expected", expectedVersion)]).ExecuteNonQueryAsync(cancellationToken) > 0, cancellationToken);

    public async Task<IReadOnlyList<TaskRun>> ListJobRunsAsync(string jobId, int endedLimit, CancellationToken cancellationToken = default)
    {
        var (activeSql, endedSql) = JobRunsSql('@', RunColumns);
        var active = await QueryRunsAsync(activeSql, cancellationToken, ("job", jobId));
        var ended = await QueryRunsAsync(endedSql, cancellationToken, ("job", jobId), ("limit", endedLimit));
        return [.. active, .. ended];
    }

    public async Task<bool> InsertReplicaAsync(TaskRun run, string? replaces, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            if (replaces is not null)
            {
                var linked = await Command(connection, transaction,
                    $"UPDATE runs SET retried_as = @new WHERE mesos_id = @old AND retried_as IS NULL AND state IN ({TerminalStates});",
                    [("new", run.MesosId), ("old", replaces)]).ExecuteNonQueryAsync(cancellationToken);
                if (linked == 0)
                    return false;
            }

            await Command(connection, transaction, InsertRunSql('@'), RunParameters(run)).ExecuteNonQueryAsync(cancellationToken);
            return true;
        }, cancellationToken);

    public async Task<bool> CreateQueueAsync(StoredQueue queue, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) => await Command(connection, transaction,
            "INSERT INTO queues (id, template, block, created_at) VALUES (@id, @template, @block, @created) ON CONFLICT (id) DO NOTHING;",
            [("id", queue.Id), ("template", Json(queue.Template)), ("block", Json(queue.Block)), ("created", queue.CreatedAt.ToUnixTimeMilliseconds())])
            .ExecuteNonQueryAsync(cancellationToken) > 0, cancellationToken);

    public async Task<StoredQueue?> GetQueueAsync(string id, CancellationToken cancellationToken = default)
    {
        var queues = await QueryQueuesAsync("SELECT * FROM queues WHERE id = @id;", cancellationToken, ("id", id));
        return queues.Count == 0 ? null : queues[0];
    }

    public Task<IReadOnlyList<StoredQueue>> ListQueuesAsync(CancellationToken cancellationToken = default) =>
        QueryQueuesAsync("SELECT * FROM queues ORDER BY created_at, id;", cancellationToken);

    public async Task<bool> UpdateQueueAsync(StoredQueue queue, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) => await Command(connection, transaction,
            "UPDATE queues SET template = @template, block = @block, next_poll_at = NULL WHERE id = @id;",
            [("id", queue.Id), ("template", Json(queue.Template)), ("block", Json(queue.Block))]).ExecuteNonQueryAsync(cancellationToken) > 0, cancellationToken);

    public async Task<bool> DeleteQueueAsync(string id, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            await Command(connection, transaction, "DELETE FROM queue_state WHERE queue_id = @id;", [("id", id)]).ExecuteNonQueryAsync(cancellationToken);
            await Command(connection, transaction, "DELETE FROM queue_dedup WHERE queue_id = @id;", [("id", id)]).ExecuteNonQueryAsync(cancellationToken);
            return await Command(connection, transaction, "DELETE FROM queues WHERE id = @id;", [("id", id)]).ExecuteNonQueryAsync(cancellationToken) > 0;
        }, cancellationToken);

    public async Task RecordPollAsync(string id, DateTimeOffset at, string? error, DateTimeOffset nextPollAt, CancellationToken cancellationToken = default) =>
        await WriteAsync((connection, transaction) => UpdatePollAsync(connection, transaction, id, at, error, nextPollAt, cancellationToken), cancellationToken);

    private static Task<int> UpdatePollAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string id, DateTimeOffset at, string? error,
        DateTimeOffset nextPollAt, CancellationToken cancellationToken) =>
        Command(connection, transaction, "UPDATE queues SET last_poll_at = @at, last_error = @error, next_poll_at = @next WHERE id = @id;",
            [("id", id), ("at", at.ToUnixTimeMilliseconds()), ("error", error), ("next", nextPollAt.ToUnixTimeMilliseconds())]).ExecuteNonQueryAsync(cancellationToken);

    public async Task<IReadOnlyDictionary<string, string>> GetSourceStateAsync(string id, CancellationToken cancellationToken = default)
    {
        var state = new Dictionary<string, string>(StringComparer.Ordinal);
        await ReadAsync("SELECT key, value FROM queue_state WHERE queue_id = @id;", reader => state[reader.GetString(0)] = reader.GetString(1), cancellationToken, ("id", id));
        return state;
    }

    public async Task EnqueueAsync(string id, IReadOnlyList<QueueBatch> batches, IReadOnlyDictionary<string, string> state, PollRecord? poll = null,
        CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            // A poll's runs and batches go in two statements, however many there are (a statement per run was most of a
            // large poll's time).
            await InsertRunsAsync(connection, transaction, batches.Select(batch => batch.Run).ToList(), cancellationToken);
            await Command(connection, transaction, """
                INSERT INTO queue_batches (message_key, queue_id, handles, state)
                SELECT v_key, @queue, v_handles, 'PENDING' FROM unnest(@keys, @handles) WITH ORDINALITY AS v(v_key, v_handles, v_n) ORDER BY v_n;
                """, [("queue", id), ("keys", batches.Select(batch => batch.Run.MessageKey).ToArray()),
                ("handles", batches.Select(batch => JsonSerializer.Serialize(batch.Handles)).ToArray())]).ExecuteNonQueryAsync(cancellationToken);
            foreach (var batch in batches)
            {
                foreach (var entry in batch.DedupKeys)
                {
                    await Command(connection, transaction, """
                        INSERT INTO queue_dedup (queue_id, dedup_key, message_key, handle, expires_at) VALUES (@queue, @dedup, @key, @handle, @expires)
                        ON CONFLICT (queue_id, dedup_key) DO UPDATE SET message_key = excluded.message_key, handle = excluded.handle, expires_at = excluded.expires_at;
                        """, [("queue", id), ("dedup", entry.Key), ("key", batch.Run.MessageKey), ("handle", entry.Handle),
                        ("expires", (batch.Run.CreatedAt + QueueDedup.Window).ToUnixTimeMilliseconds())]).ExecuteNonQueryAsync(cancellationToken);
                }
            }

            if (batches.Count > 0)
            {
                await Command(connection, transaction, "DELETE FROM queue_dedup WHERE expires_at < @now;",
                    [("now", batches[0].Run.CreatedAt.ToUnixTimeMilliseconds())]).ExecuteNonQueryAsync(cancellationToken);
            }

            foreach (var (key, value) in state)
            {
                await Command(connection, transaction,
                    "INSERT INTO queue_state (queue_id, key, value) VALUES (@queue, @key, @value) ON CONFLICT (queue_id, key) DO UPDATE SET value = excluded.value;",
                    [("queue", id), ("key", key), ("value", value)]).ExecuteNonQueryAsync(cancellationToken);
            }

            if (poll is { } polled)
                await UpdatePollAsync(connection, transaction, id, polled.At, null, polled.NextPollAt, cancellationToken);
            return true;
        }, cancellationToken);

    public async Task<(int Active, DateTimeOffset? OldestWaiting)> QueueLoadAsync(string id, CancellationToken cancellationToken = default)
    {
        (int, DateTimeOffset?) load = (0, null);
        await ReadAsync($"""
            SELECT COUNT(*)::int, MIN(CASE WHEN state = 'WAITING_ON_OFFERS' THEN created_at END)
            FROM runs WHERE queue_id = @id AND state NOT IN ({TerminalStates});
            """, reader => load = (reader.GetInt32(0), reader.IsDBNull(1) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1))),
            cancellationToken, ("id", id));
        return load;
    }

    public async Task<IReadOnlyList<EndedBatch>> ListEndedBatchesAsync(int limit, CancellationToken cancellationToken = default)
    {
        var ended = new List<EndedBatch>();
        // The outcome is written in the same transaction as the end of the batch's last run (one with no retry to come).
        await ReadAsync("""
            SELECT message_key, queue_id, handles, outcome FROM queue_batches
            WHERE state = 'PENDING' AND outcome IS NOT NULL
            LIMIT @limit;
            """, reader => ended.Add(ReadEndedBatch(reader)), cancellationToken, ("limit", limit));
        return ended;
    }

    public async Task<IReadOnlySet<string>> PendingHandlesAsync(string id, CancellationToken cancellationToken = default)
    {
        var handles = new HashSet<string>(StringComparer.Ordinal);
        await ReadAsync("SELECT handles FROM queue_batches WHERE queue_id = @id AND state = 'PENDING';",
            reader => handles.UnionWith(ReadHandles(reader, 0)), cancellationToken, ("id", id));
        return handles;
    }

    public async Task<bool> SettleBatchAsync(string messageKey, bool acknowledged, CancellationToken cancellationToken = default) =>
        await SettleBatchesAsync([messageKey], acknowledged, cancellationToken) > 0;

    /// <summary>One transaction and two statements for the lot, however many batches.</summary>
    public async Task<int> SettleBatchesAsync(IReadOnlyCollection<string> messageKeys, bool acknowledged, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            var settled = new List<string>();
            await using (var update = Command(connection, transaction,
                "UPDATE queue_batches SET state = @state WHERE message_key = ANY(@keys) AND state = 'PENDING' RETURNING message_key;",
                [("keys", messageKeys.ToArray()), ("state", acknowledged ? "ACKED" : "RELEASED")]))
            await using (var reader = await update.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                    settled.Add(reader.GetString(0));
            }

            // A released message is meant to run again: forget its keys.
            if (settled.Count > 0 && !acknowledged)
                await Command(connection, transaction, "DELETE FROM queue_dedup WHERE message_key = ANY(@keys);", [("keys", settled.ToArray())]).ExecuteNonQueryAsync(cancellationToken);
            return settled.Count;
        }, cancellationToken);

    public async Task<IReadOnlyDictionary<string, SeenMessage>> FindSeenAsync(string id, IReadOnlyCollection<string> keys, DateTimeOffset now,
        CancellationToken cancellationToken = default)
    {
        var seen = new Dictionary<string, SeenMessage>(StringComparer.Ordinal);
        await ReadAsync("""
            SELECT d.dedup_key, d.message_key, d.handle, b.state FROM queue_dedup d LEFT JOIN queue_batches b ON b.message_key = d.message_key
            WHERE d.queue_id = @id AND d.expires_at > @now AND d.dedup_key = ANY(@keys);
            """, reader => seen[reader.GetString(0)] = new SeenMessage(reader.GetString(1), Nullable(reader, "handle", reader.GetString),
                !reader.IsDBNull(3) && reader.GetString(3) == "PENDING"),
            cancellationToken, ("id", id), ("now", now.ToUnixTimeMilliseconds()), ("keys", keys.Distinct(StringComparer.Ordinal).ToArray()));
        return seen;
    }

    public async Task ReplaceHandleAsync(string id, string dedupKey, string newHandle, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            string? messageKey = null, oldHandle = null, handles = null;
            await using (var reader = await Command(connection, transaction, """
                SELECT d.message_key, d.handle, b.handles FROM queue_dedup d JOIN queue_batches b ON b.message_key = d.message_key
                WHERE d.queue_id = @id AND d.dedup_key = @dedup AND b.state = 'PENDING' FOR UPDATE OF b;
                """, [("id", id), ("dedup", dedupKey)]).ExecuteReaderAsync(cancellationToken))
            {
                if (await reader.ReadAsync(cancellationToken))
                    (messageKey, oldHandle, handles) = (reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2));
            }

            if (messageKey is null)
                return false;
            await Command(connection, transaction, "UPDATE queue_batches SET handles = @handles WHERE message_key = @key;",
                [("key", messageKey), ("handles", ReplaceHandle(handles!, oldHandle, newHandle))]).ExecuteNonQueryAsync(cancellationToken);
            await Command(connection, transaction, "UPDATE queue_dedup SET handle = @handle WHERE queue_id = @id AND dedup_key = @dedup;",
                [("id", id), ("dedup", dedupKey), ("handle", newHandle)]).ExecuteNonQueryAsync(cancellationToken);
            return true;
        }, cancellationToken);

    public async Task<Lease> TryAcquireLeaseAsync(string holder, TimeSpan duration, DateTimeOffset now, bool takeOver = false, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) =>
        {
            // The row lock orders every candidate: each decides on the lease as the one before it left it.
            Lease? current = null;
            await using (var reader = await Command(connection, transaction, "SELECT holder, term, expires_at FROM leases WHERE name = 'scheduler' FOR UPDATE;", [])
                .ExecuteReaderAsync(cancellationToken))
            {
                if (await reader.ReadAsync(cancellationToken) && reader.GetInt64(1) > 0)
                    current = ReadLease(reader);
            }

            if (Fencing.Decide(current, holder, duration, now, takeOver) is not { } next)
                return current!;
            await Command(connection, transaction, "UPDATE leases SET holder = @holder, term = @term, expires_at = @expires WHERE name = 'scheduler';",
                [("holder", next.Holder), ("term", next.Term), ("expires", next.ExpiresAt.ToUnixTimeMilliseconds())]).ExecuteNonQueryAsync(cancellationToken);
            return next;
        }, cancellationToken, fenced: false, _leaseSource);

    public async Task<Lease?> GetLeaseAsync(CancellationToken cancellationToken = default)
    {
        Lease? lease = null;
        await ReadAsync("SELECT holder, term, expires_at FROM leases WHERE name = 'scheduler' AND term > 0;", reader => lease = ReadLease(reader), cancellationToken);
        return lease;
    }

    public async Task ReleaseLeaseAsync(string holder, long term, CancellationToken cancellationToken = default) =>
        await WriteAsync(async (connection, transaction) => await Command(connection, transaction,
            "UPDATE leases SET expires_at = 0 WHERE name = 'scheduler' AND holder = @holder AND term = @term;",
            [("holder", holder), ("term", term)]).ExecuteNonQueryAsync(cancellationToken), cancellationToken, fenced: false);

    public Task<string?> GetSettingAsync(string key, CancellationToken cancellationToken = default) =>
        RunRows.GetSettingAsync(ReadAsync, '@', key, cancellationToken);

    public async Task SetSettingAsync(string key, string? value, CancellationToken cancellationToken = default)
    {
        var (sql, parameters) = SetSettingSql('@', key, value);
        await WriteAsync((connection, transaction) => Command(connection, transaction, sql, parameters).ExecuteNonQueryAsync(cancellationToken), cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _transitions.StopAsync();
        await _inserts.StopAsync();
        await _dataSource.DisposeAsync();
        await _leaseSource.DisposeAsync();
    }

    /// <summary>
    /// One write, one transaction. Under a leadership scope (<see cref="Fencing.CurrentTerm"/>) it first share-locks the
    /// lease row and checks the term, so a newer leader's takeover either waits for this write or refuses it.
    /// </summary>
    private Task<T> WriteAsync<T>(Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken, bool fenced = true,
        NpgsqlDataSource? source = null) =>
        WriteUnderAsync(fenced ? Fencing.CurrentTerm : null, work, cancellationToken, source);

    /// <summary>A write fenced by <paramref name="writeTerm"/> (none when null), whoever's context runs it.</summary>
    private async Task<T> WriteUnderAsync<T>(long? writeTerm, Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken,
        NpgsqlDataSource? source = null)
    {
        await using var connection = await (source ?? _dataSource).OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        if (writeTerm is { } term)
        {
            var stored = await Command(connection, transaction, "SELECT term FROM leases WHERE name = 'scheduler' FOR SHARE;", []).ExecuteScalarAsync(cancellationToken);
            Fencing.Check(term, stored as long?);
        }

        var result = await work(connection, transaction);
        await transaction.CommitAsync(cancellationToken);
        return result;
    }

    private async Task<IReadOnlyList<TaskRun>> QueryRunsAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        var runs = new List<TaskRun>();
        await ReadAsync(sql, reader => runs.Add(ReadRun(reader)), cancellationToken, parameters);
        return runs;
    }

    private async Task<IReadOnlyList<Job>> QueryJobsAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        var jobs = new List<Job>();
        await ReadAsync(sql, reader => jobs.Add(ReadJob(reader)), cancellationToken, parameters);
        return jobs;
    }

    private async Task<IReadOnlyList<StoredQueue>> QueryQueuesAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        var queues = new List<StoredQueue>();
        await ReadAsync(sql, reader => queues.Add(ReadQueue(reader)), cancellationToken, parameters);
        return queues;
    }

    private async Task ReadAsync(string sql, Action<DbDataReader> row, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = Command(connection, null, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            row(reader);
    }

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = Command(connection, null, sql, parameters);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<object?> ScalarAsync(string sql, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = Command(connection, null, sql, []);
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DBNull ? null : value;
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, (string Name, object? Value)[] parameters)
    {
#pragma warning disable CA2100 // Only fixed SQL and lists of known state names are built; every value is a parameter.
        var command = new NpgsqlCommand(sql, connection, transaction);
#pragma warning restore CA2100
        foreach (var (name, value) in parameters)
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }

    /// <summary>
    /// Inserts <paramref name="runs"/> in one statement, in their order (their <c>seq</c> follows it). Each column goes as a
    /// text array cast to the column's type, so that a column with no value in any run still has one.
    /// </summary>
    private static async Task InsertRunsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<TaskRun> runs, CancellationToken cancellationToken)
    {
        if (runs.Count == 0)
            return;
        var rows = runs.Select(RunParameters).ToList();
        var columns = rows[0].Select(parameter => parameter.Name).ToArray();
        var parameters = columns.Select((name, i) => (name, (object?)rows.Select(row => row[i].Value is { } value ? Convert.ToString(value, CultureInfo.InvariantCulture) : null).ToArray())).ToArray();
        await Command(connection, transaction, InsertRunsSql, parameters).ExecuteNonQueryAsync(cancellationToken);
    }

    private static readonly string InsertRunsSql = BuildInsertRunsSql();

    private static string BuildInsertRunsSql()
    {
        var types = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["attempt"] = "int", ["taskLeft"] = "int", ["systemLeft"] = "int", ["jobGroup"] = "int", ["generation"] = "int",
            ["notBefore"] = "bigint", ["created"] = "bigint",
        };
        var names = RunParameters(new TaskRun { MesosId = "", FamilyId = "", Definition = new TaskDefinition() }).Select(parameter => parameter.Name).ToArray();
        var arrays = string.Join(", ", names.Select(name => $"@{name}::{types.GetValueOrDefault(name, "text")}[]"));
        var values = string.Join(", ", names.Select(name => "v_" + name));
        // The single-run INSERT's own column list and value order, with each value read from the batch's column of that name.
        return InsertRunSql('@').Split("VALUES")[0] + $"""
            SELECT {InsertRunSql('@').Split("VALUES")[1].Trim().TrimStart('(').TrimEnd(')').Replace("@", "v_", StringComparison.Ordinal)}
            FROM unnest({arrays}) WITH ORDINALITY AS v({values}, v_n) ORDER BY v_n
            """;
    }

    /// <summary>PostgreSQL text cannot hold NUL; a container may print one.</summary>
    private static string Text(string value) => value.Contains('\0', StringComparison.Ordinal) ? value.Replace('\0', '\uFFFD') : value;
}
