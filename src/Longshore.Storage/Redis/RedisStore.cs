using System.Globalization;
using System.Text.Json;
using Longshore.Core.Execution;
using Longshore.Core.Jobs;
using Longshore.Core.Queues;
using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using StackExchange.Redis;
using static Longshore.Storage.Relational.RunRows;

namespace Longshore.Storage.Redis;

/// <summary>
/// The shared store on Redis. Every write is one MULTI/EXEC transaction guarded by conditions (WATCH): a transition
/// only commits if the run is still in the state it was read in, and a fenced write only if the lease still has the
/// writer's term; when a condition fails the write is re-read and re-decided. Indexes are sorted sets kept in the same
/// transaction as the run. Durability is Redis's own (configure AOF with <c>appendfsync everysec</c> or <c>always</c>).
/// </summary>
public sealed partial class RedisStore : IStateStore
{
    private readonly ConnectionMultiplexer _redis;
    private readonly IDatabase _db;
    private readonly RedisKeys _keys;

    private RedisStore(ConnectionMultiplexer redis, string prefix, string description)
    {
        _redis = redis;
        _db = redis.GetDatabase();
        _keys = new RedisKeys(prefix);
        Description = description;
    }

    public string InstanceId { get; private set; } = string.Empty;

    public string Description { get; }

    /// <summary>StackExchange.Redis configuration, plus <c>,prefix=KEYPREFIX</c> (default <c>longshore:</c>).</summary>
    public static (string Configuration, string Prefix) ParseConfiguration(string text)
    {
        var prefix = "longshore:";
        var parts = new List<string>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part.StartsWith("prefix=", StringComparison.OrdinalIgnoreCase))
                prefix = part["prefix=".Length..];
            else
                parts.Add(part);
        }

        return (string.Join(',', parts), prefix);
    }

    /// <summary>The configuration without its password, for logs and <c>/healthz</c>.</summary>
    public static string Redact(string text)
    {
        var (configuration, prefix) = ParseConfiguration(text);
        var options = ConfigurationOptions.Parse(configuration);
        options.Password = null;
        return $"redis:{options.ToString(includePassword: false)},prefix={prefix}";
    }

    public static async Task<RedisStore> OpenAsync(string text, CancellationToken cancellationToken = default)
    {
        var (configuration, prefix) = ParseConfiguration(text);
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = false;
        var redis = await ConnectionMultiplexer.ConnectAsync(options);
        var store = new RedisStore(redis, prefix, Redact(text));
        await store._db.PingAsync().WaitAsync(cancellationToken);
        await store._db.HashSetAsync(store._keys.Meta, "instance_id", Guid.NewGuid().ToString("N")[..12], When.NotExists);
        await store._db.HashSetAsync(store._keys.Meta, "schema", 1, When.NotExists);
        store.InstanceId = (string)(await store._db.HashGetAsync(store._keys.Meta, "instance_id"))!;
        return store;
    }

    public async ValueTask DisposeAsync() => await _redis.DisposeAsync();

    public async Task<DateTimeOffset> GetServerTimeAsync(CancellationToken cancellationToken = default)
    {
        // TIME answers [unix seconds, microseconds].
        var time = (RedisResult[])(await _db.ExecuteAsync("TIME"))!;
        return DateTimeOffset.FromUnixTimeSeconds((long)time[0]).AddTicks((long)time[1] * 10);
    }

    public async Task InsertAsync(TaskRun run, CancellationToken cancellationToken = default)
    {
        var seq = await _db.StringIncrementAsync(_keys.Seq);
        await CommitAsync(tx =>
        {
            tx.AddCondition(Condition.KeyNotExists(_keys.Run(run.MesosId)));
            AddRun(tx, run, seq);
        }, () => throw new InvalidOperationException($"run {run.MesosId} exists already"));
    }

    public async Task<TaskRun?> GetAsync(string mesosId, CancellationToken cancellationToken = default)
    {
        var entries = await _db.HashGetAllAsync(_keys.Run(mesosId));
        return entries.Length == 0 ? null : ReadRun(entries);
    }

    public async Task<IReadOnlyList<TaskRun>> ListAsync(RunQuery query, CancellationToken cancellationToken = default)
    {
        double below = double.PositiveInfinity;
        if (query.AfterMesosId is not null)
        {
            var seq = await _db.HashGetAsync(_keys.Run(query.AfterMesosId), "seq");
            if (seq.IsNull)
                return [];
            below = (double)seq;
        }

        // Walk the narrowest index newest first; with both filters, check the other on the way.
        var index = query.FamilyId is not null ? _keys.ByFamily(query.FamilyId) : query.State is { } s ? _keys.ByState(s.ToWire()) : _keys.Runs;
        var result = new List<TaskRun>();
        while (result.Count < query.Limit)
        {
            var page = await _db.SortedSetRangeByScoreWithScoresAsync(index, double.NegativeInfinity, below, Exclude.Stop, Order.Descending, 0, Math.Max(query.Limit, 64));
            if (page.Length == 0)
                break;
            below = page[^1].Score;
            foreach (var run in await ReadRunsAsync([.. page.Select(entry => entry.Element)]))
            {
                if ((query.State is null || run.State == query.State) && result.Count < query.Limit)
                    result.Add(run);
            }
        }

        return result;
    }

    public async Task<IReadOnlyList<TaskRun>> ListDueAsync(DateTimeOffset now, int limit, IReadOnlyCollection<string> skipFamilies, CancellationToken cancellationToken = default)
    {
        // The earliest due first, a limit's worth at a time: reading every waiting run each pass would make a pass O(backlog).
        // Runs of skipped families are stepped over, so they cannot hide the due runs behind them.
        var due = new List<TaskRun>();
        for (var skip = 0L; due.Count < limit; skip += limit)
        {
            var ids = await _db.SortedSetRangeByScoreAsync(_keys.Due, double.NegativeInfinity, now.ToUnixTimeMilliseconds(), skip: skip, take: limit);
            if (ids.Length == 0)
                break;
            due.AddRange((await ReadRunsAsync(ids)).Where(run => run.State == TaskState.WaitingOnOffers && !skipFamilies.Contains(run.FamilyId)));
        }

        return due.OrderBy(run => run.Seq).Take(limit).ToList();
    }

    public async Task<IReadOnlyList<TaskRun>> ListActiveAsync(CancellationToken cancellationToken = default)
    {
        var ids = new List<RedisValue>();
        foreach (var state in TaskStates.Active)
            ids.AddRange(await _db.SortedSetRangeByRankAsync(_keys.ByState(state.ToWire())));
        return (await ReadRunsAsync([.. ids])).Where(run => run.State.IsActive()).OrderBy(run => run.Seq).ToList();
    }

    public async Task<IReadOnlyDictionary<string, int>> CountActiveByFamilyAsync(CancellationToken cancellationToken = default) =>
        (await _db.HashGetAllAsync(_keys.ActiveByFamily)).Where(e => (int)e.Value > 0).ToDictionary(e => (string)e.Name!, e => (int)e.Value, StringComparer.Ordinal);

    public async Task<IReadOnlyDictionary<TaskState, long>> CountByStateAsync(CancellationToken cancellationToken = default)
    {
        var states = Enum.GetValues<TaskState>();
        var counts = await Task.WhenAll(states.Select(state => _db.SortedSetLengthAsync(_keys.ByState(state.ToWire()))));
        return states.Zip(counts).Where(pair => pair.Second > 0).ToDictionary(pair => pair.First, pair => pair.Second);
    }

    public async Task<DateTimeOffset?> NextDueAsync(CancellationToken cancellationToken = default)
    {
        var first = await _db.SortedSetRangeByRankWithScoresAsync(_keys.Due, 0, 0);
        return first.Length == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)first[0].Score);
    }

    public async Task<bool> TryTransitionAsync(RunTransition transition, CancellationToken cancellationToken = default)
    {
        if (transition.From.Count == 0)
            return false;
        var retrySeq = transition.Retry is null ? 0 : await _db.StringIncrementAsync(_keys.Seq);
        while (true)
        {
            var run = await GetAsync(transition.MesosId, cancellationToken);
            if (run is null || !transition.From.Contains(run.State))
            {
                await CheckFenceAsync();
                return false;
            }

            if (await TryCommitAsync(tx =>
            {
                tx.AddCondition(Condition.HashEqual(_keys.Run(run.MesosId), "state", run.State.ToWire()));
                ApplyTransition(tx, run, transition);
                if (transition.Retry is { } retry)
                    AddRun(tx, retry, retrySeq);
            }))
                return true;
        }
    }

    public async Task<IReadOnlyList<ActivityBucket>> ActivityAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        var from = since.ToUnixTimeMilliseconds() / 60000;
        var launches = await MinutesAsync("launches", from);
        var finished = await MinutesAsync("finished", from);
        var failures = await MinutesAsync("failures", from);
        return launches.Keys.Union(finished.Keys).Union(failures.Keys).Order()
            .Select(minute => new ActivityBucket(DateTimeOffset.FromUnixTimeMilliseconds(minute * 60000), launches.GetValueOrDefault(minute),
                finished.GetValueOrDefault(minute), failures.GetValueOrDefault(minute)))
            .ToList();
    }

    public async Task<long> ChangeMarkAsync(CancellationToken cancellationToken = default) => (long)await _db.StringGetAsync(_keys.Changes);

    public async Task<TaskLogs?> GetLogsAsync(string mesosId, CancellationToken cancellationToken = default)
    {
        var values = await _db.HashGetAsync(_keys.Logs(mesosId), ["stdout", "stderr", "truncated"]);
        return values[0].IsNull ? null : new TaskLogs(values[0]!, values[1]!, (bool)values[2]);
    }

    public async Task<bool> DeleteTerminalAsync(string mesosId, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var run = await GetAsync(mesosId, cancellationToken);
            if (run is null || !run.State.IsTerminal())
                return false;
            if (await TryCommitAsync(tx =>
            {
                tx.AddCondition(Condition.HashEqual(_keys.Run(mesosId), "state", run.State.ToWire()));
                _ = tx.KeyDeleteAsync([_keys.Run(mesosId), _keys.Logs(mesosId)]);
                foreach (var index in Indexes(run))
                    _ = tx.SortedSetRemoveAsync(index, mesosId);
            }))
                return true;
        }
    }

    /// <summary>Adds a new run and its index entries to the transaction.</summary>
    private void AddRun(ITransaction tx, TaskRun run, long seq)
    {
        var fields = RunParameters(run).Where(p => p.Value is not null)
            .Select(p => new HashEntry(ColumnOf(p.Name), Value(p.Value))).ToList();
        fields.Add(new HashEntry("seq", seq));
        fields.Add(new HashEntry("updated_at", run.CreatedAt.ToUnixTimeMilliseconds()));
        _ = tx.HashSetAsync(_keys.Run(run.MesosId), [.. fields]);
        var stored = run with { Seq = seq };
        foreach (var index in Indexes(stored))
            _ = tx.SortedSetAddAsync(index, run.MesosId, seq);
        if (run.State == TaskState.WaitingOnOffers)
            _ = tx.SortedSetAddAsync(_keys.Due, run.MesosId, run.NotBefore.ToUnixTimeMilliseconds());
        if (run.State.IsActive())
            _ = tx.HashIncrementAsync(_keys.ActiveByFamily, run.FamilyId);
        _ = tx.SetAddAsync(_keys.Families, run.FamilyId);
    }

    private void ApplyTransition(ITransaction tx, TaskRun run, RunTransition transition)
    {
        var key = _keys.Run(run.MesosId);
        var at = transition.At.ToUnixTimeMilliseconds();
        var to = transition.To;
        var fields = new List<HashEntry> { new("state", to.ToWire()), new("updated_at", at) };
        if (to == TaskState.Staging)
            fields.Add(new("staged_at", at));
        if (run.StartedAt is null && (to == TaskState.Running ? at : transition.StartedAt?.ToUnixTimeMilliseconds()) is { } started)
            fields.Add(new("started_at", started));
        if (to.IsTerminal())
            fields.Add(new("finished_at", at));
        foreach (var (name, value) in new (string, object?)[]
        {
            ("exit_code", transition.ExitCode), ("reason", transition.Reason), ("agent", transition.Agent),
            ("container_id", transition.ContainerId), ("retried_as", transition.Retry?.MesosId),
        })
        {
            if (value is not null)
                fields.Add(new(name, Value(value)));
        }

        _ = tx.HashSetAsync(key, [.. fields]);
        _ = tx.SortedSetRemoveAsync(_keys.ByState(run.State.ToWire()), run.MesosId);
        _ = tx.SortedSetAddAsync(_keys.ByState(to.ToWire()), run.MesosId, run.Seq);
        if (run.State == TaskState.WaitingOnOffers)
            _ = tx.SortedSetRemoveAsync(_keys.Due, run.MesosId);
        if (run.State.IsActive() != to.IsActive())
            _ = tx.HashIncrementAsync(_keys.ActiveByFamily, run.FamilyId, to.IsActive() ? 1 : -1);
        if (to.IsTerminal() && run.QueueId is not null)
            _ = tx.SortedSetRemoveAsync(_keys.QueueOpen(run.QueueId), run.MesosId);
        var minute = at / 60000;
        if (to == TaskState.Staging)
            _ = tx.HashIncrementAsync(_keys.Activity("launches"), minute);
        if (to.IsTerminal())
            _ = tx.HashIncrementAsync(_keys.Activity(to == TaskState.Finished ? "finished" : "failures"), minute);
        if (transition.Logs is { } logs)
            _ = tx.HashSetAsync(_keys.Logs(run.MesosId), [new("stdout", logs.Stdout), new("stderr", logs.Stderr), new("truncated", logs.Truncated)]);
    }

    /// <summary>Every sorted set the run is listed in (by seq).</summary>
    private IEnumerable<string> Indexes(TaskRun run)
    {
        yield return _keys.Runs;
        yield return _keys.ByState(run.State.ToWire());
        yield return _keys.ByFamily(run.FamilyId);
        if (run.JobId is not null)
            yield return _keys.ByJob(run.JobId);
        if (run.MessageKey is not null)
            yield return _keys.ByMessage(run.MessageKey);
        if (run.QueueId is not null && !run.State.IsTerminal())
            yield return _keys.QueueOpen(run.QueueId);
        if (run.State == TaskState.WaitingOnOffers)
            yield return _keys.Due;
    }

    /// <summary>
    /// Commits the transaction built by <paramref name="build"/>, with the fence and the change mark. False when a condition
    /// failed (the caller re-reads); throws <see cref="StaleTermException"/> when it was the fence.
    /// </summary>
    private async Task<bool> TryCommitAsync(Action<ITransaction> build, bool fenced = true)
    {
        var tx = _db.CreateTransaction();
        var term = fenced ? Fencing.CurrentTerm : null;
        if (term is { } t)
            tx.AddCondition(Condition.HashEqual(_keys.Lease, "term", t));
        build(tx);
        _ = tx.StringIncrementAsync(_keys.Changes);
        if (await tx.ExecuteAsync())
            return true;
        if (term is not null)
            await CheckFenceAsync();
        return false;
    }

    private async Task CommitAsync(Action<ITransaction> build, Action onConditionFailed)
    {
        if (!await TryCommitAsync(build))
            onConditionFailed();
    }

    private async Task CheckFenceAsync()
    {
        if (Fencing.CurrentTerm is { } term)
        {
            var stored = await _db.HashGetAsync(_keys.Lease, "term");
            Fencing.Check(term, stored.IsNull ? null : (long)stored);
        }
    }

    private async Task<List<TaskRun>> ReadRunsAsync(RedisValue[] ids)
    {
        var batch = _db.CreateBatch();
        var reads = ids.Select(id => batch.HashGetAllAsync(_keys.Run((string)id!))).ToList();
        batch.Execute();
        var runs = new List<TaskRun>(ids.Length);
        foreach (var read in reads)
        {
            var entries = await read;
            if (entries.Length > 0)
                runs.Add(ReadRun(entries));
        }

        return runs;
    }

    private async Task<Dictionary<long, int>> MinutesAsync(string kind, long from) =>
        (await _db.HashGetAllAsync(_keys.Activity(kind))).Select(e => (Minute: (long)e.Name, Count: (int)e.Value))
            .Where(e => e.Minute >= from).ToDictionary(e => e.Minute, e => e.Count);

    private static RedisValue Value(object? value) => value switch
    {
        null => RedisValue.Null,
        string s => s,
        int i => i,
        long l => l,
        bool b => b,
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    /// <summary>Maps the bare parameter names of the shared row mapping to the column names every store uses.</summary>
    private static string ColumnOf(string parameter) => parameter switch
    {
        "id" => "mesos_id",
        "family" => "family_id",
        "taskLeft" => "task_retries_left",
        "systemLeft" => "system_retries_left",
        "notBefore" => "not_before",
        "created" => "created_at",
        "retryOf" => "retry_of",
        "jobId" => "job_id",
        "jobGroup" => "job_group",
        "generation" => "job_generation",
        "queueId" => "queue_id",
        "messageKey" => "message_key",
        _ => parameter,
    };

    private static TaskRun ReadRun(HashEntry[] entries)
    {
        var row = entries.ToDictionary(e => (string)e.Name!, e => e.Value, StringComparer.Ordinal);
        RedisValue Get(string name) => row.TryGetValue(name, out var value) ? value : RedisValue.Null;
        DateTimeOffset? Time(string name) => Get(name).IsNull ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)Get(name));
        string? Text(string name) => Get(name).IsNull ? null : (string?)Get(name);
        int? Number(string name) => Get(name).IsNull ? null : (int)Get(name);
        return new TaskRun
        {
            Seq = (long)Get("seq"),
            MesosId = Text("mesos_id")!,
            FamilyId = Text("family_id")!,
            Attempt = (int)Get("attempt"),
            State = TaskStates.Parse(Text("state")!),
            Definition = JsonSerializer.Deserialize<TaskDefinition>(Text("definition")!, TaskDefinitionJson.Options)!,
            TaskRetriesLeft = (int)Get("task_retries_left"),
            SystemRetriesLeft = (int)Get("system_retries_left"),
            NotBefore = Time("not_before")!.Value,
            CreatedAt = Time("created_at")!.Value,
            StagedAt = Time("staged_at"),
            StartedAt = Time("started_at"),
            FinishedAt = Time("finished_at"),
            UpdatedAt = Time("updated_at")!.Value,
            ExitCode = Number("exit_code"),
            Reason = Text("reason"),
            Agent = Text("agent"),
            ContainerId = Text("container_id"),
            RetryOf = Text("retry_of"),
            RetriedAs = Text("retried_as"),
            JobId = Text("job_id"),
            JobGroup = Number("job_group"),
            Generation = Number("job_generation"),
            QueueId = Text("queue_id"),
            MessageKey = Text("message_key"),
        };
    }
}
