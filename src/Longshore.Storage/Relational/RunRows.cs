using System.Data.Common;
using System.Text.Json;
using Longshore.Core.Jobs;
using Longshore.Core.Queues;
using Longshore.Core.Tasks;

namespace Longshore.Storage.Relational;

/// <summary>How a SQL store reads: runs <paramref name="sql"/> and hands each row to <paramref name="row"/>.</summary>
internal delegate Task RowReader(string sql, Action<DbDataReader> row, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters);

/// <summary>
/// Row mapping shared by the SQL stores (SQLite, PostgreSQL): both keep the same columns, times as Unix milliseconds and
/// definitions as JSON, so a row reads and writes the same way in either. Parameter names are bare; each store adds
/// its own prefix in SQL.
/// </summary>
internal static class RunRows
{
    public static (string Name, object? Value)[] RunParameters(TaskRun run) =>
    [
        ("id", run.MesosId), ("family", run.FamilyId), ("attempt", run.Attempt), ("state", run.State.ToWire()),
        ("definition", Json(run.Definition)), ("taskLeft", run.TaskRetriesLeft),
        ("systemLeft", run.SystemRetriesLeft), ("notBefore", run.NotBefore.ToUnixTimeMilliseconds()),
        ("created", run.CreatedAt.ToUnixTimeMilliseconds()), ("retryOf", run.RetryOf), ("jobId", run.JobId),
        ("jobGroup", run.JobGroup), ("generation", run.Generation), ("queueId", run.QueueId), ("messageKey", run.MessageKey),
    ];

    /// <summary>The column list and values (with <paramref name="prefix"/>) of <see cref="RunParameters"/>, for an INSERT.</summary>
    public static string InsertRunSql(char prefix) => $"""
        INSERT INTO runs (mesos_id, family_id, attempt, state, definition, task_retries_left, system_retries_left, not_before,
            created_at, updated_at, retry_of, job_id, job_group, job_generation, queue_id, message_key)
        VALUES ({prefix}id, {prefix}family, {prefix}attempt, {prefix}state, {prefix}definition, {prefix}taskLeft, {prefix}systemLeft,
            {prefix}notBefore, {prefix}created, {prefix}created, {prefix}retryOf, {prefix}jobId, {prefix}jobGroup, {prefix}generation,
            {prefix}queueId, {prefix}messageKey)
        """;

    /// <summary>
    /// What a transition sets: the new state and time, the step's timestamp, and what was learned (kept when not given).
    /// Values are read from a batch's columns, named with <paramref name="prefix"/> so that they are not column names of
    /// <c>runs</c>; only a run still in one of the expected states may be moved (the statement's own condition).
    /// </summary>
    public static string TransitionAssignments(string prefix, string terminalTest) => $"""
        state = {prefix}to, updated_at = {prefix}at,
            staged_at = CASE WHEN {prefix}to = 'TASK_STAGING' THEN {prefix}at ELSE staged_at END,
            started_at = COALESCE(started_at, CASE WHEN {prefix}to = 'TASK_RUNNING' THEN {prefix}at ELSE {prefix}started END),
            finished_at = CASE WHEN {terminalTest} THEN {prefix}at ELSE finished_at END,
            exit_code = COALESCE({prefix}exit, exit_code),
            reason = COALESCE({prefix}reason, reason),
            agent = COALESCE({prefix}agent, agent),
            container_id = COALESCE({prefix}container, container_id),
            retried_as = COALESCE({prefix}retry, retried_as)
        """;

    /// <summary>A page of runs, newest first, after a run (keyset on <c>seq</c>), by state and family id.</summary>
    public static (string Sql, (string Name, object? Value)[] Parameters) ListSql(char prefix, string columns, Core.Storage.RunQuery query)
    {
        var where = new List<string>();
        var parameters = new List<(string, object?)> { ("limit", query.Limit) };
        if (query.AfterMesosId is not null)
        {
            where.Add($"seq < COALESCE((SELECT seq FROM runs WHERE mesos_id = {prefix}after), -1)");
            parameters.Add(("after", query.AfterMesosId));
        }

        if (query.State is { } state)
        {
            where.Add($"state = {prefix}state");
            parameters.Add(("state", state.ToWire()));
        }

        if (query.FamilyId is not null)
        {
            where.Add($"family_id = {prefix}family");
            parameters.Add(("family", query.FamilyId));
        }

        var filter = where.Count == 0 ? string.Empty : "WHERE " + string.Join(" AND ", where);
        return ($"SELECT {columns} FROM runs {filter} ORDER BY seq DESC LIMIT {prefix}limit;", [.. parameters]);
    }

    /// <summary>A job's active runs, and its ended ones up to a limit, newest first.</summary>
    public static (string Active, string Ended) JobRunsSql(char prefix, string columns) =>
        ($"SELECT {columns} FROM runs WHERE job_id = {prefix}job AND state NOT IN ({InList(TaskStates.Terminal)}) ORDER BY seq DESC;",
            $"SELECT {columns} FROM runs WHERE job_id = {prefix}job AND state IN ({InList(TaskStates.Terminal)}) ORDER BY seq DESC LIMIT {prefix}limit;");

    public static (string Name, object? Value)[] JobParameters(Job job) =>
    [
        ("id", job.Id), ("definition", Json(job.Definition)),
        ("state", job.State == JobState.Stopped ? "STOPPED" : "RUNNING"), ("generation", job.Generation),
        ("at", job.UpdatedAt.ToUnixTimeMilliseconds()),
    ];

    /// <summary>A batch's handle list (JSON) with <paramref name="oldHandle"/> replaced by <paramref name="newHandle"/>, or the new one added.</summary>
    public static string ReplaceHandle(string handles, string? oldHandle, string newHandle)
    {
        var list = JsonSerializer.Deserialize<List<string>>(handles)!;
        var at = oldHandle is null ? -1 : list.IndexOf(oldHandle);
        if (at >= 0)
            list[at] = newHandle;
        else
            list.Add(newHandle);
        return JsonSerializer.Serialize(list);
    }

    /// <summary>
    /// The ended states in their declared order: the predicate of the <c>runs_ended</c> index of both SQL stores, written
    /// the same way in the queries that use it (SQLite uses a partial index only for a predicate it can match term by term).
    /// </summary>
    public static readonly string EndedStates = InList(TaskStates.Terminal.Order());

    /// <summary>
    /// Deletes up to <c>limit</c> ended runs whose last state change is before <c>cutoff</c>, oldest first, returning
    /// their ids and batch keys. A run whose queue batch is still unsettled stays: settling needs it.
    /// </summary>
    public static string PruneEndedBeforeSql(char prefix, string indexHint) => $"""
        DELETE FROM runs WHERE seq IN (
            SELECT r.seq FROM runs r {indexHint}
            WHERE r.state IN ({EndedStates}) AND r.updated_at < {prefix}cutoff AND {Unpinned("r")}
            ORDER BY r.updated_at LIMIT {prefix}limit)
        RETURNING mesos_id, message_key
        """;

    /// <summary>Deletes up to <c>limit</c> of a family's ended runs beyond its newest <c>keep</c> (by creation), returning their ids and batch keys.</summary>
    public static string PruneFamilySql(char prefix) => $"""
        DELETE FROM runs WHERE seq IN (
            SELECT old.seq FROM (
                SELECT seq, message_key FROM runs WHERE family_id = {prefix}family AND state IN ({EndedStates})
                ORDER BY seq DESC LIMIT {prefix}limit OFFSET {prefix}keep) old
            WHERE {Unpinned("old")})
        RETURNING mesos_id, message_key
        """;

    /// <summary>Families with more than <c>keep</c> ended runs (the <c>(family_id, state)</c> index answers it alone).</summary>
    public static string FamiliesOverSql(char prefix) =>
        $"SELECT family_id FROM runs WHERE state IN ({EndedStates}) GROUP BY family_id HAVING COUNT(*) > {prefix}keep;";

    /// <summary>
    /// What goes with pruned runs, given their ids and batch keys as lists (<paramref name="elements"/> turns a parameter
    /// name into the SQL of its elements): their logs, and their batches once settled and left without a run.
    /// </summary>
    public static string PrunedLeftoversSql(char prefix, Func<string, string> elements) => $"""
        DELETE FROM run_logs WHERE mesos_id IN ({elements(prefix + "ids")});
        DELETE FROM queue_batches WHERE message_key IN ({elements(prefix + "keys")}) AND state <> 'PENDING'
            AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.message_key = queue_batches.message_key);
        """;

    /// <summary>Deletes up to <c>limit</c> de-duplication keys that expired before <c>cutoff</c> (a queue that gets no more messages never prunes its own).</summary>
    public static string PruneExpiredDedupSql(char prefix) => $"""
        DELETE FROM queue_dedup WHERE (queue_id, dedup_key) IN (
            SELECT queue_id, dedup_key FROM queue_dedup WHERE expires_at < {prefix}cutoff LIMIT {prefix}limit);
        """;

    /// <summary>A run whose queue batch is not settled yet: settling reads it, so retention leaves it.</summary>
    private static string Unpinned(string alias) =>
        $"NOT EXISTS (SELECT 1 FROM queue_batches b WHERE b.message_key = {alias}.message_key AND b.state = 'PENDING')";

    public static string Json<T>(T value) => JsonSerializer.Serialize(value, TaskDefinitionJson.Options);

    public static string InList(IEnumerable<TaskState> states) => string.Join(", ", states.Select(state => $"'{state.ToWire()}'"));

    public static TaskRun ReadRun(DbDataReader reader) => new()
    {
        Seq = reader.GetInt64(reader.GetOrdinal("seq")),
        MesosId = reader.GetString(reader.GetOrdinal("mesos_id")),
        FamilyId = reader.GetString(reader.GetOrdinal("family_id")),
        Attempt = reader.GetInt32(reader.GetOrdinal("attempt")),
        State = TaskStates.Parse(reader.GetString(reader.GetOrdinal("state"))),
        Definition = JsonSerializer.Deserialize<TaskDefinition>(reader.GetString(reader.GetOrdinal("definition")), TaskDefinitionJson.Options)!,
        TaskRetriesLeft = reader.GetInt32(reader.GetOrdinal("task_retries_left")),
        SystemRetriesLeft = reader.GetInt32(reader.GetOrdinal("system_retries_left")),
        NotBefore = Time(reader, "not_before")!.Value,
        CreatedAt = Time(reader, "created_at")!.Value,
        StagedAt = Time(reader, "staged_at"),
        StartedAt = Time(reader, "started_at"),
        FinishedAt = Time(reader, "finished_at"),
        UpdatedAt = Time(reader, "updated_at")!.Value,
        ExitCode = Nullable(reader, "exit_code", ordinal => (int?)reader.GetInt32(ordinal)),
        Reason = Nullable(reader, "reason", reader.GetString),
        Agent = Nullable(reader, "agent", reader.GetString),
        ContainerId = Nullable(reader, "container_id", reader.GetString),
        RetryOf = Nullable(reader, "retry_of", reader.GetString),
        RetriedAs = Nullable(reader, "retried_as", reader.GetString),
        JobId = Nullable(reader, "job_id", reader.GetString),
        JobGroup = Nullable(reader, "job_group", ordinal => (int?)reader.GetInt32(ordinal)),
        Generation = Nullable(reader, "job_generation", ordinal => (int?)reader.GetInt32(ordinal)),
        QueueId = Nullable(reader, "queue_id", reader.GetString),
        MessageKey = Nullable(reader, "message_key", reader.GetString),
    };

    public static Job ReadJob(DbDataReader reader) => new()
    {
        Id = reader.GetString(reader.GetOrdinal("id")),
        Definition = JsonSerializer.Deserialize<JobDefinition>(reader.GetString(reader.GetOrdinal("definition")), TaskDefinitionJson.Options)!,
        State = reader.GetString(reader.GetOrdinal("state")) == "STOPPED" ? JobState.Stopped : JobState.Running,
        Generation = reader.GetInt32(reader.GetOrdinal("generation")),
        Version = reader.GetInt64(reader.GetOrdinal("version")),
        CreatedAt = Time(reader, "created_at")!.Value,
        UpdatedAt = Time(reader, "updated_at")!.Value,
    };

    public static StoredQueue ReadQueue(DbDataReader reader) => new()
    {
        Id = reader.GetString(reader.GetOrdinal("id")),
        Template = JsonSerializer.Deserialize<TaskDefinition>(reader.GetString(reader.GetOrdinal("template")), TaskDefinitionJson.Options)!,
        Block = JsonSerializer.Deserialize<QueueBlock>(reader.GetString(reader.GetOrdinal("block")), TaskDefinitionJson.Options)!,
        CreatedAt = Time(reader, "created_at")!.Value,
        LastPollAt = Time(reader, "last_poll_at"),
        LastError = Nullable(reader, "last_error", reader.GetString),
        NextPollAt = Time(reader, "next_poll_at"),
    };

    /// <summary>A row of (message_key, queue_id, handles, outcome), the outcome FINISHED or FAILED.</summary>
    public static EndedBatch ReadEndedBatch(DbDataReader reader) => new(reader.GetString(0), reader.GetString(1),
        JsonSerializer.Deserialize<List<string>>(reader.GetString(2))!, reader.GetString(3) == "FINISHED");

    public static IEnumerable<string> ReadHandles(DbDataReader reader, int ordinal) => JsonSerializer.Deserialize<List<string>>(reader.GetString(ordinal))!;

    public static Core.Storage.Lease ReadLease(DbDataReader reader) => new(reader.GetString(reader.GetOrdinal("holder")),
        reader.GetInt64(reader.GetOrdinal("term")), Time(reader, "expires_at")!.Value);

    public static DateTimeOffset? Time(DbDataReader reader, string column)
    {
        var ordinal = reader.GetOrdinal(column);
        return reader.IsDBNull(ordinal) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(ordinal));
    }

    public static T? Nullable<T>(DbDataReader reader, string column, Func<int, T> get)
    {
        var ordinal = reader.GetOrdinal(column);
        return reader.IsDBNull(ordinal) ? default : get(ordinal);
    }

    /// <summary>Active runs per family, the same query on either store.</summary>
    public static async Task<IReadOnlyDictionary<string, int>> CountActiveByFamilyAsync(RowReader read, CancellationToken cancellationToken)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        await read($"SELECT family_id, COUNT(*) FROM runs WHERE state IN ({InList(TaskStates.Active)}) GROUP BY family_id;",
            reader => counts[reader.GetString(0)] = checked((int)reader.GetInt64(1)), cancellationToken);
        return counts;
    }

    /// <summary>Runs per state, the same query on either store.</summary>
    public static async Task<IReadOnlyDictionary<TaskState, long>> CountByStateAsync(RowReader read, CancellationToken cancellationToken)
    {
        var counts = new Dictionary<TaskState, long>();
        await read("SELECT state, COUNT(*) FROM runs GROUP BY state;", reader => counts[TaskStates.Parse(reader.GetString(0))] = reader.GetInt64(1), cancellationToken);
        return counts;
    }

    /// <summary>A shared setting (see <see cref="SettingKey"/>), the same query on either store.</summary>
    public static async Task<string?> GetSettingAsync(RowReader read, char prefix, string key, CancellationToken cancellationToken)
    {
        string? value = null;
        await read($"SELECT value FROM meta WHERE key = {prefix}key;", reader => value = reader.GetString(0), cancellationToken, SettingParameters(key, null));
        return value;
    }

    /// <summary>The write of <see cref="GetSettingAsync"/>'s value, with its parameters: a null value removes the setting.</summary>
    public static (string Sql, (string Name, object? Value)[] Parameters) SetSettingSql(char prefix, string key, string? value) => value is null
        ? ($"DELETE FROM meta WHERE key = {prefix}key;", SettingParameters(key, null))
        : ($"INSERT INTO meta (key, value) VALUES ({prefix}key, {prefix}value) ON CONFLICT (key) DO UPDATE SET value = excluded.value;",
            SettingParameters(key, value));

    /// <summary>Where a shared setting is kept in a store's metadata, apart from the store's own entries.</summary>
    public static string SettingKey(string key) => "setting:" + key;

    private static (string Name, object? Value)[] SettingParameters(string key, string? value) =>
        value is null ? [("key", SettingKey(key))] : [("key", SettingKey(key)), ("value", value)];
}
