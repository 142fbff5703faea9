using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using StackExchange.Redis;

namespace Longshore.Storage.Redis;

/// <summary>
/// Retention on Redis: ended runs are found through the per-state and per-family sorted sets (scored by seq) and deleted
/// with their index entries in one MULTI/EXEC per batch; a batch hash goes once it is settled and none of its runs is left.
/// </summary>
public sealed partial class RedisStore : IRetentionStore
{
    private const int ScanPage = 256;

    /// <summary>How many runs past the last one pruned a call may look at in one state before it stops (runs that must stay for now).</summary>
    private const int ScanBudgetPerRun = 20;

    public async Task<int> PruneEndedBeforeAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken = default)
    {
        var at = cutoff.ToUnixTimeMilliseconds();
        var candidates = new List<TaskRun>();
        foreach (var state in TaskStates.Terminal)
        {
            // Oldest seq first. Runs are numbered as they are created and none ends before it is created, so the walk
            // stops at the first run created after the cutoff: it never reads the runs it keeps, however many there are.
            var index = _keys.ByState(state.ToWire());
            var from = double.NegativeInfinity;
            var budget = limit * ScanBudgetPerRun;
            var done = false;
            while (!done && candidates.Count < limit && budget > 0)
            {
                var page = await _db.SortedSetRangeByScoreWithScoresAsync(index, from, double.PositiveInfinity, Exclude.Start, Order.Ascending, 0, ScanPage);
                if (page.Length == 0)
                    break;
                from = page[^1].Score;
                budget -= page.Length;
                var runs = await ReadRunsAsync([.. page.Select(entry => entry.Element)]);
                var pinned = await PinnedAsync(runs);
                foreach (var run in runs)
                {
                    if (run.CreatedAt.ToUnixTimeMilliseconds() >= at || candidates.Count >= limit)
                    {
                        done = true;
                        break;
                    }

                    if (run.State.IsTerminal() && run.UpdatedAt.ToUnixTimeMilliseconds() < at && !pinned.Contains(run.MessageKey ?? string.Empty))
                        candidates.Add(run);
                }
            }
        }

        var pruned = await DeleteEndedAsync(candidates);
        await ForgetActivityBeforeAsync(at / 60000);
        return pruned;
    }

    public async Task<IReadOnlyList<string>> FamiliesOverAsync(int keep, CancellationToken cancellationToken = default)
    {
        await IndexFamiliesAsync();
        var over = new List<string>();
        foreach (var chunk in (await _db.SetMembersAsync(_keys.Families)).Select(member => (string)member!).Chunk(1000))
        {
            var counts = await Task.WhenAll(chunk.Select(family => _db.SortedSetLengthAsync(_keys.ByFamily(family))));
            for (var i = 0; i < chunk.Length; i++)
            {
                if (counts[i] > keep)
                {
                    over.Add(chunk[i]);
                }
                else if (counts[i] == 0)
                {
                    // Every run of the family is gone: forget it, unless a run arrived meanwhile.
                    var family = chunk[i];
                    await TryCommitAsync(tx =>
                    {
                        tx.AddCondition(Condition.SortedSetLengthEqual(_keys.ByFamily(family), 0));
                        _ = tx.SetRemoveAsync(_keys.Families, family);
                    });
                }
            }
        }

        return over;
    }

    public async Task<int> PruneFamilyAsync(string familyId, int keep, int limit, CancellationToken cancellationToken = default)
    {
        // Newest first: the first `keep` ended runs stay, the ended ones after them go.
        var candidates = new List<TaskRun>();
        var ended = 0;
        var below = double.PositiveInfinity;
        while (candidates.Count < limit)
        {
            var page = await _db.SortedSetRangeByScoreWithScoresAsync(_keys.ByFamily(familyId), double.NegativeInfinity, below, Exclude.Stop, Order.Descending, 0, ScanPage);
            if (page.Length == 0)
                break;
            below = page[^1].Score;
            var runs = await ReadRunsAsync([.. page.Select(entry => entry.Element)]);
            var pinned = await PinnedAsync(runs);
            foreach (var run in runs.Where(run => run.State.IsTerminal()))
            {
                if (++ended > keep && !pinned.Contains(run.MessageKey ?? string.Empty) && candidates.Count < limit)
                    candidates.Add(run);
            }
        }

        return await DeleteEndedAsync(candidates);
    }

    /// <summary>The batch keys, among these runs', of batches not settled yet.</summary>
    private async Task<HashSet<string>> PinnedAsync(List<TaskRun> runs)
    {
        var keys = runs.Where(run => run.MessageKey is not null).Select(run => run.MessageKey!).Distinct(StringComparer.Ordinal).ToList();
        var states = await Task.WhenAll(keys.Select(key => _db.HashGetAsync(_keys.Batch(key), "state")));
        return keys.Where((_, i) => states[i] == "PENDING").ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Deletes ended runs (and their logs and index entries) in one transaction, then their settled batches left without a run.</summary>
    private async Task<int> DeleteEndedAsync(List<TaskRun> runs)
    {
        if (runs.Count == 0)
            return 0;
        var deleted = runs.Count;
        if (!await TryCommitAsync(tx =>
        {
            foreach (var run in runs)
            {
                tx.AddCondition(Condition.HashEqual(_keys.Run(run.MesosId), "state", run.State.ToWire()));
                _ = tx.KeyDeleteAsync([_keys.Run(run.MesosId), _keys.Logs(run.MesosId)]);
                foreach (var index in Indexes(run))
                    _ = tx.SortedSetRemoveAsync(index, run.MesosId);
            }
        }))
        {
            // One of them went meanwhile (DELETE /tasks/…): one at a time, each as the API deletes a run.
            deleted = 0;
            foreach (var run in runs)
                deleted += await DeleteTerminalAsync(run.MesosId) ? 1 : 0;
        }

        foreach (var key in runs.Where(run => run.MessageKey is not null).Select(run => run.MessageKey!).Distinct(StringComparer.Ordinal))
        {
            if (await _db.SortedSetLengthAsync(_keys.ByMessage(key)) > 0)
                continue;
            await TryCommitAsync(tx =>
            {
                tx.AddCondition(Condition.SortedSetLengthEqual(_keys.ByMessage(key), 0));
                tx.AddCondition(Condition.HashNotEqual(_keys.Batch(key), "state", "PENDING"));
                _ = tx.KeyDeleteAsync([_keys.Batch(key), _keys.DedupOfBatch(key)]);
            });
        }

        return deleted;
    }

    /// <summary>The dashboard's per-minute counters before the cutoff: nobody reads them once their runs are gone.</summary>
    private async Task ForgetActivityBeforeAsync(long minute)
    {
        foreach (var kind in (string[])["launches", "finished", "failures"])
        {
            var old = (await _db.HashKeysAsync(_keys.Activity(kind))).Where(field => (long)field < minute).ToArray();
            if (old.Length > 0)
                await _db.HashDeleteAsync(_keys.Activity(kind), old);
        }
    }

    /// <summary>
    /// Fills the family set once per store from the family indexes already there (stores written before it existed);
    /// every run added since adds its family itself.
    /// </summary>
    private async Task IndexFamiliesAsync()
    {
        if (!(await _db.HashGetAsync(_keys.Meta, "families_indexed")).IsNull)
            return;
        var server = _redis.GetServers().First(s => !s.IsReplica);
        var prefix = _keys.ByFamily(string.Empty);
        var pattern = string.Concat(prefix.Select(c => c is '*' or '?' or '[' or ']' or '\\' ? "\\" + c : c.ToString())) + "*";
        var batch = new List<RedisValue>();
        await foreach (var key in server.KeysAsync(_db.Database, pattern, pageSize: 1000))
        {
            batch.Add(((string)key!)[prefix.Length..]);
            if (batch.Count >= 1000)
            {
                await _db.SetAddAsync(_keys.Families, [.. batch]);
                batch.Clear();
            }
        }

        if (batch.Count > 0)
            await _db.SetAddAsync(_keys.Families, [.. batch]);
        await _db.HashSetAsync(_keys.Meta, "families_indexed", 1);
    }
}
