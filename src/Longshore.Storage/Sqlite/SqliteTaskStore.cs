using System.Data.Common;
using System.Globalization;
using System.Threading.Channels;
using Longshore.Core.Execution;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Longshore.Storage.Relational;
using Microsoft.Data.Sqlite;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file in WAL mode. Writes go through one writer at a time (SQLite allows no more),
/// reads run beside them. With <c>synchronous=FULL</c> (the default) a transition is on disk before it is acted on.
/// </summary>
public sealed partial class SqliteTaskStore : IStateStore, IDisposable
{
    private static readonly string ActiveStates = InList(TaskStates.Active);

    private readonly string _connectionString;
    private readonly string _synchronous;
    private const int MaxBatch = 256;
    private readonly Channel<PendingWrite> _writes = Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true });
    private Task? _writerLoop;
    private long _changes;

    private SqliteTaskStore(string connectionString, string synchronous)
    {
        _connectionString = connectionString;
        _synchronous = synchronous;
    }

    public string InstanceId { get; private set; } = string.Empty;

    public string Path { get; private init; } = string.Empty;

    public string Description => "sqlite:" + Path;

    /// <summary>The machine's clock: every instance that can open this file runs on this machine.</summary>
    public Task<DateTimeOffset> GetServerTimeAsync(CancellationToken cancellationToken = default) => Task.FromResult(TimeProvider.System.GetUtcNow());

    /// <summary>Opens (creating if needed) the database file and brings its schema up to date.</summary>
    /// <param name="synchronous">SQLite's <c>synchronous</c> pragma: FULL (default) or NORMAL.</param>
    public static async Task<SqliteTaskStore> OpenAsync(string path, string synchronous = "FULL", CancellationToken cancellationToken = default)
    {
        if (synchronous is not ("FULL" or "NORMAL"))
            throw new ArgumentException("sqlite synchronous must be FULL or NORMAL", nameof(synchronous));
        var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true, DefaultTimeout = 30 };
        var store = new SqliteTaskStore(builder.ToString(), synchronous) { Path = path };
        await using var connection = await store.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, null, "PRAGMA journal_mode=WAL;", cancellationToken);
        await store.MigrateAsync(connection, cancellationToken);
        store.InstanceId = await EnsureInstanceIdAsync(connection, cancellationToken);
        store._writerLoop = Task.Run(store.WriterLoopAsync, CancellationToken.None);
        return store;
    }

    private async Task<SqliteConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        // A pooled connection keeps its settings: they are made once per SQLite connection, not on every open (three
        // statements to prepare and run before each read of a page).
        if (connection.Handle is { } handle && (!Configured.TryGetValue(handle, out var synchronous) || synchronous != _synchronous))
        {
            await ExecuteAsync(connection, null, $"PRAGMA synchronous={_synchronous}; PRAGMA busy_timeout=30000; PRAGMA foreign_keys=ON;", cancellationToken);
            Configured.AddOrUpdate(handle, _synchronous);
        }

        return connection;
    }

    /// <summary>The SQLite connections (alive in the pool or in use) that have had their settings made, with the synchronous setting made.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<SQLitePCL.sqlite3, string> Configured = [];

    private async Task MigrateAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        var version = Convert.ToInt32(await ScalarAsync(connection, null, "PRAGMA user_version;", cancellationToken), CultureInfo.InvariantCulture);
        if (version > SqliteMigrations.Steps.Length)
            throw new InvalidOperationException($"The database {Path} has schema version {version}, newer than this Longshore knows ({SqliteMigrations.Steps.Length}); use a newer Longshore.");
        for (var step = version; step < SqliteMigrations.Steps.Length; step++)
        {
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            await ExecuteAsync(connection, transaction, SqliteMigrations.Steps[step], cancellationToken);
            await ExecuteAsync(connection, transaction, $"PRAGMA user_version={step + 1};", cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
    }

    private static async Task<string> EnsureInstanceIdAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        await ExecuteAsync(connection, null, "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', $v);", cancellationToken,
            ("$v", Guid.NewGuid().ToString("N")[..12]));
        return (string)(await ScalarAsync(connection, null, "SELECT value FROM meta WHERE key = 'instance_id';", cancellationToken))!;
    }

    public async Task InsertAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        await WriteAsync(async (connection, transaction) =>
        {
            await InsertRunAsync(connection, transaction, run, cancellationToken);
            return true;
        }, cancellationToken);
    }

    public async Task<TaskRun?> GetAsync(string mesosId, CancellationToken cancellationToken = default)
    {
        var runs = await QueryRunsAsync("SELECT * FROM runs WHERE mesos_id = $id;", cancellationToken, ("$id", mesosId));
        return runs.Count == 0 ? null : runs[0];
    }

    public async Task<IReadOnlyList<TaskRun>> ListAsync(RunQuery query, CancellationToken cancellationToken = default)
    {
        var (sql, parameters) = ListSql('$', "*", query);
        return await QueryRunsAsync(sql, cancellationToken, parameters);
    }

    public Task<IReadOnlyList<TaskRun>> ListDueAsync(DateTimeOffset now, int limit, IReadOnlyCollection<string> skipFamilies, CancellationToken cancellationToken = default)
    {
        var skip = skipFamilies.Select((family, i) => ($"$skip{i}", (object?)family)).ToList();
        var notIn = skip.Count == 0 ? string.Empty : $"AND family_id NOT IN ({string.Join(", ", skip.Select(p => p.Item1))})";
        // Walks the waiting runs in seq order and stops at the limit; the planner's own choice (the not_before index)
        // sorts every due run on each pass, which grows with the backlog.
        return QueryRunsAsync($"SELECT * FROM runs INDEXED BY runs_state_seq WHERE state = 'WAITING_ON_OFFERS' AND not_before <= $now {notIn} ORDER BY seq LIMIT $limit;",
            cancellationToken, [("$now", now.ToUnixTimeMilliseconds()), ("$limit", limit), .. skip]);
    }

    public Task<IReadOnlyList<TaskRun>> ListActiveAsync(CancellationToken cancellationToken = default) =>
        QueryRunsAsync($"SELECT * FROM runs WHERE state IN ({ActiveStates}) ORDER BY seq;", cancellationToken);

    public Task<IReadOnlyDictionary<string, int>> CountActiveByFamilyAsync(CancellationToken cancellationToken = default) =>
        RunRows.CountActiveByFamilyAsync(ReadAsync, cancellationToken);

    public Task<IReadOnlyDictionary<TaskState, long>> CountByStateAsync(CancellationToken cancellationToken = default) =>
        RunRows.CountByStateAsync(ReadAsync, cancellationToken);

    public async Task<DateTimeOffset?> NextDueAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenConnectionAsync(cancellationToken);
        var value = await ScalarAsync(connection, null, "SELECT MIN(not_before) FROM runs WHERE state = 'WAITING_ON_OFFERS';", cancellationToken);
        return value is long ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
    }

    public async Task<bool> TryTransitionAsync(RunTransition transition, CancellationToken cancellationToken = default)
    {
        if (transition.From.Count == 0)
            return false;
        // Alone, this is a combined write of one; the writer combines transitions waiting together (see TransitionAllAsync).
        return await WriteAsync(async (connection, transaction) => (await TransitionAllAsync(connection, transaction, [transition]))[0], cancellationToken, transition);
    }

    public async Task<IReadOnlyList<ActivityBucket>> ActivityAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        var buckets = new SortedDictionary<long, (int Launches, int Finished, int Failures)>();
        var from = since.ToUnixTimeMilliseconds();
        await ReadAsync("SELECT staged_at / 60000, COUNT(*) FROM runs WHERE staged_at >= $since GROUP BY 1;",
            reader => buckets[reader.GetInt64(0)] = buckets.GetValueOrDefault(reader.GetInt64(0)) with { Launches = reader.GetInt32(1) },
            cancellationToken, ("$since", from));
        await ReadAsync("SELECT finished_at / 60000, SUM(state = 'TASK_FINISHED'), SUM(state <> 'TASK_FINISHED') FROM runs WHERE finished_at >= $since GROUP BY 1;",
            reader => buckets[reader.GetInt64(0)] = buckets.GetValueOrDefault(reader.GetInt64(0)) with { Finished = reader.GetInt32(1), Failures = reader.GetInt32(2) },
            cancellationToken, ("$since", from));
        return buckets.Select(pair => new ActivityBucket(DateTimeOffset.FromUnixTimeMilliseconds(pair.Key * 60000), pair.Value.Launches, pair.Value.Finished, pair.Value.Failures)).ToList();
    }

    /// <remarks>Counts this process's committed writes: with one process per SQLite file, that is every change.</remarks>
    public Task<long> ChangeMarkAsync(CancellationToken cancellationToken = default) => Task.FromResult(Interlocked.Read(ref _changes));

    public async Task<TaskLogs?> GetLogsAsync(string mesosId, CancellationToken cancellationToken = default)
    {
        TaskLogs? logs = null;
        await ReadAsync("SELECT stdout, stderr, truncated FROM run_logs WHERE mesos_id = $id;",
            reader => logs = new TaskLogs(reader.GetString(0), reader.GetString(1), reader.GetBoolean(2)), cancellationToken, ("$id", mesosId));
        return logs;
    }

    public async Task<bool> DeleteTerminalAsync(string mesosId, CancellationToken cancellationToken = default)
    {
        var terminal = InList(TaskStates.Terminal);
        return await WriteAsync(async (connection, transaction) =>
        {
            var deleted = await ExecuteAsync(connection, transaction, $"DELETE FROM runs WHERE mesos_id = $id AND state IN ({terminal});", cancellationToken, ("$id", mesosId));
            if (deleted > 0)
                await ExecuteAsync(connection, transaction, "DELETE FROM run_logs WHERE mesos_id = $id;", cancellationToken, ("$id", mesosId));
            return deleted > 0;
        }, cancellationToken);
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    public void Dispose()
    {
        _writes.Writer.TryComplete();
        _writerLoop?.Wait(TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// Queues a write for the single writer, which commits every write waiting at that moment in one transaction (one
    /// fsync for all: group commit). Each write runs in its own savepoint, so one that fails is rolled back alone, and
    /// no caller hears of success before the shared commit is durable.
    /// </summary>
    private async Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, Task<T>> work, CancellationToken cancellationToken, RunTransition? transition = null)
    {
        var write = new PendingWrite(async (connection, transaction) => await work(connection, transaction), Fencing.CurrentTerm) { Transition = transition };
        ObjectDisposedException.ThrowIf(!_writes.Writer.TryWrite(write), this);
        return (T)(await write.Done.Task.WaitAsync(cancellationToken))!;
    }

    private async Task WriterLoopAsync()
    {
        await using var connection = await OpenConnectionAsync(CancellationToken.None);
        using var statements = WriterStatements.Register(connection);
        var batch = new List<PendingWrite>(MaxBatch);
        while (await _writes.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxBatch && _writes.Reader.TryRead(out var write))
                batch.Add(write);
            var outcomes = new (object? Result, Exception? Error)[batch.Count];
            try
            {
                await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync();
                // The lease's term as this transaction sees it. Only a write of the batch can change it (the transaction's
                // snapshot holds otherwise), and only one outside a term (the election's own): the term is read again after one.
                long? leaseTerm = null;
                var leaseTermRead = false;
                var combined = new bool[batch.Count];
                for (var i = 0; i < batch.Count; i++)
                {
                    if (combined[i])
                        continue;
                    if (batch[i].Transition is not null && CombinableWith(batch, i, combined) is { Count: > 1 } group)
                    {
                        // The transitions of this commit under the same term go together: one lease check and one statement.
                        if (batch[i].Term is not null && !leaseTermRead)
                            (leaseTerm, leaseTermRead) = (await LeaseTermAsync(connection, transaction), true);
                        if (await TryTransitionAllAsync(connection, transaction, batch, group, leaseTerm, outcomes))
                        {
                            foreach (var j in group)
                                combined[j] = true;
                            continue;
                        }
                    }

                    await ExecuteAsync(connection, transaction, "SAVEPOINT write;", CancellationToken.None);
                    try
                    {
                        // Fencing: the term is read in the write's own transaction, so no lease change can slip between.
                        if (batch[i].Term is { } term)
                        {
                            if (!leaseTermRead)
                                (leaseTerm, leaseTermRead) = (await LeaseTermAsync(connection, transaction), true);
                            Fencing.Check(term, leaseTerm);
                        }
                        else
                        {
                            leaseTermRead = false;
                        }

                        outcomes[i] = (await batch[i].Work(connection, transaction), null);
                        await ExecuteAsync(connection, transaction, "RELEASE write;", CancellationToken.None);
                    }
                    catch (Exception e)
                    {
                        outcomes[i] = (null, e);
                        await ExecuteAsync(connection, transaction, "ROLLBACK TO write; RELEASE write;", CancellationToken.None);
                    }
                }

                await transaction.CommitAsync();
            }
            catch (Exception e)
            {
                // The commit itself failed: nothing of the batch is stored.
                foreach (var write in batch)
                    write.Done.TrySetException(e);
                continue;
            }

            Interlocked.Add(ref _changes, outcomes.Count(o => o.Error is null));
            for (var i = 0; i < batch.Count; i++)
            {
                if (outcomes[i].Error is { } error)
                    batch[i].Done.TrySetException(error);
                else
                    batch[i].Done.TrySetResult(outcomes[i].Result);
            }
        }
    }

    private sealed record PendingWrite(Func<SqliteConnection, SqliteTransaction, Task<object?>> Work, long? Term)
    {
        /// <summary>Set on a transition's write, so that it can be combined with others.</summary>
        public RunTransition? Transition { get; init; }

        public TaskCompletionSource<object?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private static async Task InsertRunAsync(SqliteConnection connection, SqliteTransaction transaction, TaskRun run, CancellationToken cancellationToken)
    {
        await using var insert = RunInserter(connection, transaction);
        await InsertRunAsync(insert, run, cancellationToken);
    }

    /// <summary>One prepared INSERT for many runs: preparing the statement again for every run costs more than running it.</summary>
    private static SqliteCommand RunInserter(SqliteConnection connection, SqliteTransaction transaction)
    {
        var command = CreateCommand(connection, transaction, InsertRunSql('$') + ";", []);
        if (command.Parameters.Count == 0)
        {
            foreach (var (name, _) in RunParameters(Placeholder))
                command.Parameters.Add(new SqliteParameter { ParameterName = "$" + name });
        }

        return command;
    }

    private static readonly TaskRun Placeholder = new() { MesosId = "", FamilyId = "", Definition = new TaskDefinition() };

    private static async Task InsertRunAsync(SqliteCommand insert, TaskRun run, CancellationToken cancellationToken)
    {
        foreach (var (name, value) in RunParameters(run))
            insert.Parameters["$" + name].Value = value ?? DBNull.Value;
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<IReadOnlyList<TaskRun>> QueryRunsAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        var runs = new List<TaskRun>();
        await ReadAsync(sql, reader => runs.Add(ReadRun(reader)), cancellationToken, parameters);
        return runs;
    }

    private async Task ReadAsync(string sql, Action<DbDataReader> row, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await OpenConnectionAsync(cancellationToken);
        await using var command = CreateCommand(connection, null, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            row(reader);
    }

    private static async Task<int> ExecuteAsync(SqliteConnection connection, SqliteTransaction? transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var command = CreateCommand(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<object?> ScalarAsync(SqliteConnection connection, SqliteTransaction? transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var command = CreateCommand(connection, transaction, sql, parameters);
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DBNull ? null : value;
    }

    private static SqliteCommand CreateCommand(SqliteConnection connection, SqliteTransaction? transaction, string sql, (string Name, object? Value)[] parameters)
    {
#pragma warning disable CA2100 // Only fixed SQL and lists of known state names are built; every value is a parameter.
        var command = WriterStatements.Find(connection, transaction, sql) ?? new SqliteCommand(sql, connection, transaction);
#pragma warning restore CA2100
        foreach (var (name, value) in parameters)
        {
            var key = name.StartsWith('$') ? name : "$" + name;
            // A kept command has its parameters from the last use already.
            if (command.Parameters.IndexOf(key) is var index and >= 0)
                command.Parameters[index].Value = value ?? DBNull.Value;
            else
                command.Parameters.AddWithValue(key, value ?? DBNull.Value);
        }

        return command;
    }

}
