using Longshore.Core.Tasks;

namespace Longshore.Core.Scheduling;

/// <summary>
/// What the leading scheduler knows of the runs it has staged and not yet seen end: how many per family (for the caps)
/// and each one's last known state (so an engine report needs no read of the run before its compare-and-set). Only
/// the leader moves runs into and out of the active states, so these counts are exact while it leads; they are read
/// from the store when it takes the lead and compared with the store at each reconciliation. A pass that admits nothing
/// then costs no read of the active runs however many there are.
/// </summary>
internal sealed class ActiveRuns
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, int> _byFamily = new(StringComparer.Ordinal);
    private readonly Dictionary<string, KnownRun> _states = new(StringComparer.Ordinal);
    private int _total;
    private HashSet<string>? _endedDuringRecount;
    private HashSet<string>? _startedDuringRecount;

    public int Total
    {
        get
        {
            lock (_lock)
                return _total;
        }
    }

    /// <summary>A copy of the counts per family.</summary>
    public IReadOnlyDictionary<string, int> ByFamily()
    {
        lock (_lock)
            return new Dictionary<string, int>(_byFamily, StringComparer.Ordinal);
    }

    /// <summary>
    /// Starts a recount: ends and stagings recorded from now on are remembered, so that a run listed as active by a read
    /// that raced with its end is not counted again (an end missed that way would hold a slot until the next recount),
    /// and a run staged after the read is not forgotten (passes go on while the engine is reconciled; a staging missed
    /// that way would free a slot it holds, and let a family past its cap).
    /// </summary>
    public void BeginRecount()
    {
        lock (_lock)
        {
            _endedDuringRecount = new HashSet<string>(StringComparer.Ordinal);
            _startedDuringRecount = new HashSet<string>(StringComparer.Ordinal);
        }
    }

    /// <summary>Replaces the counts with the store's active runs, read after <see cref="BeginRecount"/>; returns by how many runs they differed.</summary>
    public int Recount(IReadOnlyCollection<TaskRun> active)
    {
        lock (_lock)
        {
            var ended = _endedDuringRecount ?? [];
            var started = _startedDuringRecount ?? [];
            _endedDuringRecount = null;
            _startedDuringRecount = null;
            var counts = new Dictionary<string, int>(StringComparer.Ordinal);
            var states = new Dictionary<string, KnownRun>(StringComparer.Ordinal);
            foreach (var run in active)
            {
                if (ended.Contains(run.MesosId))
                    continue;
                counts[run.FamilyId] = counts.GetValueOrDefault(run.FamilyId) + 1;
                // A state recorded here since the read is newer than the read's.
                states[run.MesosId] = _states.TryGetValue(run.MesosId, out var known) ? known : new KnownRun(run.State, run.FamilyId, run.QueueId, run.MessageKey, run.StagedAt) { StartedAt = run.StartedAt };
            }

            // Staged after the read, and not ended since: what this scheduler recorded of them stands.
            foreach (var mesosId in started)
            {
                if (states.ContainsKey(mesosId) || ended.Contains(mesosId) || !_states.TryGetValue(mesosId, out var known))
                    continue;
                counts[known.FamilyId] = counts.GetValueOrDefault(known.FamilyId) + 1;
                states[mesosId] = known;
            }

            var drift = counts.Sum(pair => Math.Abs(pair.Value - _byFamily.GetValueOrDefault(pair.Key)))
                + _byFamily.Where(pair => !counts.ContainsKey(pair.Key)).Sum(pair => pair.Value);
            _byFamily.Clear();
            foreach (var (family, count) in counts)
                _byFamily[family] = count;
            _states.Clear();
            foreach (var (id, state) in states)
                _states[id] = state;
            _total = counts.Values.Sum();
            return drift;
        }
    }

    /// <summary>Forgets every known state (a new term starts from what the store and the engine say).</summary>
    public void ForgetStates()
    {
        lock (_lock)
            _states.Clear();
    }

    /// <summary>A run entered an active state (it was staged).</summary>
    public void Started(TaskRun run)
    {
        lock (_lock)
        {
            _byFamily[run.FamilyId] = _byFamily.GetValueOrDefault(run.FamilyId) + 1;
            _total++;
            _states[run.MesosId] = new KnownRun(run.State, run.FamilyId, run.QueueId, run.MessageKey, run.StagedAt) { Staged = run, StartedAt = run.StartedAt };
            _startedDuringRecount?.Add(run.MesosId);
        }
    }

    /// <summary>A run left the active states (its end is recorded).</summary>
    public void Ended(string mesosId, string familyId)
    {
        lock (_lock)
        {
            _endedDuringRecount?.Add(mesosId);
            _states.Remove(mesosId);
            if (_byFamily.TryGetValue(familyId, out var count))
            {
                if (count <= 1)
                    _byFamily.Remove(familyId);
                else
                    _byFamily[familyId] = count - 1;
                _total--;
            }
        }
    }

    /// <summary>The run moved to another active state, as this scheduler recorded.</summary>
    public void Moved(string mesosId, TaskState state, DateTimeOffset at)
    {
        lock (_lock)
        {
            if (_states.TryGetValue(mesosId, out var known))
                _states[mesosId] = known with { State = state, StartedAt = known.StartedAt ?? (state == TaskState.Running ? at : null) };
        }
    }

    /// <summary>What this scheduler last recorded of the run, if it has it.</summary>
    public bool TryGet(string mesosId, out KnownRun run)
    {
        lock (_lock)
            return _states.TryGetValue(mesosId, out run);
    }

    /// <summary>Active runs per family and state, as last recorded here.</summary>
    public IReadOnlyDictionary<(string Family, TaskState State), int> ByFamilyAndState()
    {
        lock (_lock)
            return _states.Values.GroupBy(run => (run.FamilyId, run.State)).ToDictionary(group => group.Key, group => group.Count());
    }
}

/// <summary>What the scheduler keeps of an active run: enough to apply a report without reading it, and to time its steps.</summary>
internal readonly record struct KnownRun(TaskState State, string FamilyId, string? QueueId, string? MessageKey, DateTimeOffset? StagedAt)
{
    /// <summary>When the run started, as recorded.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>
    /// The run as this leader staged it (what does not change while it runs: its definition, retries, queue and job), so
    /// that its end is written without reading it first; null for runs found by a recount (another leader's, or this
    /// one's before it took the lead), which are read.
    /// </summary>
    public TaskRun? Staged { get; init; }
}
