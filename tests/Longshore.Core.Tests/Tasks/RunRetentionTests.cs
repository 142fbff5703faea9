using Longshore.Core.Storage;
using Longshore.Core.Tasks;
using Microsoft.Extensions.Logging.Abstractions;

namespace Longshore.Core.Tests.Tasks;

public sealed class RunRetentionTests
{
    /// <summary>A store with ended runs to prune: by age (a count) and per family (counts beyond the limit).</summary>
    private sealed class PrunableStore : IRetentionStore
    {
        public int Old { get; set; }

        public Dictionary<string, int> EndedByFamily { get; } = new(StringComparer.Ordinal);

        public List<string> Calls { get; } = [];

        public DateTimeOffset? Cutoff { get; private set; }

        public Task<int> PruneEndedBeforeAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken = default)
        {
            Cutoff = cutoff;
            var pruned = Math.Min(limit, Old);
            Old -= pruned;
            Calls.Add($"age {pruned}");
            return Task.FromResult(pruned);
        }

        public Task<IReadOnlyList<string>> FamiliesOverAsync(int keep, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<string>>(EndedByFamily.Where(pair => pair.Value > keep).Select(pair => pair.Key).Order(StringComparer.Ordinal).ToList());

        public Task<int> PruneFamilyAsync(string familyId, int keep, int limit, CancellationToken cancellationToken = default)
        {
            var pruned = Math.Min(limit, Math.Max(0, EndedByFamily[familyId] - keep));
            EndedByFamily[familyId] -= pruned;
            Calls.Add($"{familyId} {pruned}");
            return Task.FromResult(pruned);
        }
    }

    private static RunRetention Retention(PrunableStore store, RetentionOptions options, TimeProvider time) =>
        new(store, options with { BatchPause = TimeSpan.Zero }, time, NullLogger<RunRetention>.Instance);

    [Fact]
    public async Task Pass_DeletesByAgeThenByCount_InBatches_UntilABatchComesBackShort()
    {
        var time = TestClock.Fake();
        var store = new PrunableStore { Old = 5 };
        store.EndedByFamily["a"] = 9;
        store.EndedByFamily["b"] = 3;
        var retention = Retention(store, new RetentionOptions { MaxAge = TimeSpan.FromHours(1), MaxPerTaskId = 3, BatchSize = 2 }, time);

        var (byAge, byCount) = await retention.PassAsync();

        Assert.Equal((5L, 6L), (byAge, byCount));
        Assert.Equal(["age 2", "age 2", "age 1", "a 2", "a 2", "a 2", "a 0"], store.Calls);
        Assert.Equal(time.GetUtcNow() - TimeSpan.FromHours(1), store.Cutoff);
        Assert.Equal((5L, 6L, DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds())), (retention.PrunedByAge, retention.PrunedByCount, retention.LastPassAt));
    }

    [Fact]
    public async Task Pass_ZeroAgeAndZeroCount_DeleteNothing()
    {
        var store = new PrunableStore { Old = 5 };
        store.EndedByFamily["a"] = 9;

        var pruned = await Retention(store, new RetentionOptions { MaxAge = TimeSpan.Zero, MaxPerTaskId = 0 }, TestClock.Fake()).PassAsync();

        Assert.Equal((0L, 0L), pruned);
        Assert.Empty(store.Calls);
    }

    [Fact]
    public async Task RunAsync_PassesEveryInterval_OnTheInjectedClock()
    {
        var time = TestClock.Fake();
        var store = new PrunableStore();
        var retention = Retention(store, new RetentionOptions { MaxAge = TimeSpan.FromSeconds(8), MaxPerTaskId = 0 }, time);
        using var stop = new CancellationTokenSource();
        var loop = retention.RunAsync(stop.Token);

        // A pass every 4 s of the fake clock (half of the 8 s retention), never sooner; a second of slack for the loop to
        // set its next timer after a pass.
        for (var i = 0; i < 3; i++)
        {
            var advanced = 0;
            while (store.Calls.Count == i && advanced < 20)
            {
                time.Advance(TimeSpan.FromSeconds(1));
                advanced++;
                await Task.Delay(20);
            }

            Assert.Equal(i + 1, store.Calls.Count);
            Assert.InRange(advanced, 4, 5);
        }

        await stop.CancelAsync();
        await loop;
    }

    [Fact]
    public async Task RunAsync_Off_IdlesUntilStopped_SoTheLeadersWorkDoesNotEnd()
    {
        var time = TestClock.Fake();
        var store = new PrunableStore { Old = 5 };
        var retention = Retention(store, new RetentionOptions { MaxAge = TimeSpan.Zero, MaxPerTaskId = 0 }, time);
        using var stop = new CancellationTokenSource();
        var loop = retention.RunAsync(stop.Token);

        time.Advance(TimeSpan.FromHours(1));
        await Task.Delay(100);
        Assert.False(loop.IsCompleted);
        Assert.Empty(store.Calls);

        await stop.CancelAsync();
        await loop.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Theory]
    [InlineData(86400, 60)]
    [InlineData(60, 30)]
    [InlineData(1, 1)]
    [InlineData(0, 60)]
    public void Interval_IsAMinute_OrHalfTheRetentionWhenShorter(double retentionSeconds, double intervalSeconds) =>
        Assert.Equal(TimeSpan.FromSeconds(intervalSeconds), new RetentionOptions { MaxAge = TimeSpan.FromSeconds(retentionSeconds) }.Interval);

    [Fact]
    public void Validate_NamesTheSettingAndHipposVariable()
    {
        var errors = new RetentionOptions { MaxAge = TimeSpan.FromSeconds(-1), MaxPerTaskId = -1 }.Validate();

        Assert.Equal(2, errors.Count);
        Assert.StartsWith("task-retention (TASK_RETENTION_SECONDS):", errors[0], StringComparison.Ordinal);
        Assert.StartsWith("task-retention-count (TASK_RETENTION_COUNT):", errors[1], StringComparison.Ordinal);
        Assert.Empty(new RetentionOptions().Validate());
        Assert.Equal((TimeSpan.FromDays(1), 100), (new RetentionOptions().MaxAge, new RetentionOptions().MaxPerTaskId));
    }
}
