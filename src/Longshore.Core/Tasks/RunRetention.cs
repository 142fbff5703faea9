using Longshore.Core.Storage;
using Microsoft.Extensions.Logging;

namespace Longshore.Core.Tasks;

/// <summary>
/// How long ended runs are kept, as Hippo keeps its tasks (<c>TASK_RETENTION_SECONDS</c>, <c>TASK_RETENTION_COUNT</c>).
/// Every default is what <c>longshore server</c> uses.
/// </summary>
public sealed record RetentionOptions
{
    /// <summary>Ended runs whose last state change is older than this are deleted. Default 1 day (Hippo's 86400 s); zero keeps them whatever their age.</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Most ended runs kept per task id (family id), the newest. Default 100 (Hippo's); zero sets no limit.</summary>
    public int MaxPerTaskId { get; init; } = 100;

    /// <summary>
    /// Runs deleted per store write. Default 100: a write the scheduler's or the API's may have to wait behind (SQLite
    /// has one writer) lasts milliseconds, not a second.
    /// </summary>
    public int BatchSize { get; init; } = 100;

    /// <summary>
    /// Least pause after each batch, so the scheduler's and the API's writes go between batches; the pause is at least as
    /// long as the batch took, so retention never has more than half of the store's time. Default 20 ms.
    /// </summary>
    public TimeSpan BatchPause { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Time between passes: a minute, or half of <see cref="MaxAge"/> when that is shorter (at least a second).</summary>
    public TimeSpan Interval => MaxAge > TimeSpan.Zero
        ? TimeSpan.FromTicks(Math.Clamp(MaxAge.Ticks / 2, TimeSpan.TicksPerSecond, TimeSpan.TicksPerMinute))
        : TimeSpan.FromMinutes(1);

    /// <summary>Every failing setting, named with its rule.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (MaxAge < TimeSpan.Zero || MaxAge > TimeSpan.FromDays(36_500))
            errors.Add($"task-retention (TASK_RETENTION_SECONDS): must be a number of seconds from 0 (keep ended runs whatever their age) to 3153600000, got {MaxAge.TotalSeconds}");
        if (MaxPerTaskId < 0)
            errors.Add($"task-retention-count (TASK_RETENTION_COUNT): must be a whole number from 0 (no limit), got {MaxPerTaskId}");
        if (BatchSize < 1)
            errors.Add("retention batch size: must be at least 1");
        return errors;
    }
}

/// <summary>
/// The leader's retention loop: each pass deletes, a small batch at a time, the ended runs older than
/// <see cref="RetentionOptions.MaxAge"/>, then those beyond the newest <see cref="RetentionOptions.MaxPerTaskId"/> ended
/// runs of each task id, with their logs and settled queue batches. Waiting and active runs are never deleted.
/// </summary>
public sealed partial class RunRetention(IRetentionStore store, RetentionOptions options, TimeProvider time, ILogger<RunRetention> logger)
{
    private long _prunedByAge;
    private long _prunedByCount;
    private long _lastPassAt;

    public RetentionOptions Options => options;

    /// <summary>Runs this instance deleted for their age since it started.</summary>
    public long PrunedByAge => Interlocked.Read(ref _prunedByAge);

    /// <summary>Runs this instance deleted for being beyond their task id's count since it started.</summary>
    public long PrunedByCount => Interlocked.Read(ref _prunedByCount);

    /// <summary>When the last complete pass ended; null before the first.</summary>
    public DateTimeOffset? LastPassAt => Interlocked.Read(ref _lastPassAt) is var ms and > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;

    /// <summary>Runs a pass every <see cref="RetentionOptions.Interval"/> until cancelled (the first after one interval).</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        if (options.MaxAge == TimeSpan.Zero && options.MaxPerTaskId == 0)
        {
            // Off: idle for the whole term. Returning would end the leader's work, and with it the term.
            await Task.Delay(Timeout.InfiniteTimeSpan, time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return;
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(options.Interval, time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (cancellationToken.IsCancellationRequested)
                break;
            try
            {
                await PassAsync(cancellationToken);
            }
            catch (Exception e) when (e is not (OperationCanceledException or StaleTermException))
            {
                // Tried again at the next pass; what was deleted stays deleted.
                LogPassFailed(e);
            }
        }
    }

    /// <summary>One pass: by age, then by count; returns how many runs each rule deleted.</summary>
    public async Task<(long ByAge, long ByCount)> PassAsync(CancellationToken cancellationToken = default)
    {
        long byAge = 0, byCount = 0;
        if (options.MaxAge > TimeSpan.Zero)
        {
            var cutoff = time.GetUtcNow() - options.MaxAge;
            byAge = await DrainAsync(() => store.PruneEndedBeforeAsync(cutoff, options.BatchSize, cancellationToken), cancellationToken);
            Interlocked.Add(ref _prunedByAge, byAge);
        }

        if (options.MaxPerTaskId > 0)
        {
            foreach (var family in await store.FamiliesOverAsync(options.MaxPerTaskId, cancellationToken))
            {
                var pruned = await DrainAsync(() => store.PruneFamilyAsync(family, options.MaxPerTaskId, options.BatchSize, cancellationToken), cancellationToken);
                Interlocked.Add(ref _prunedByCount, pruned);
                byCount += pruned;
            }
        }

        Interlocked.Exchange(ref _lastPassAt, time.GetUtcNow().ToUnixTimeMilliseconds());
        if (byAge + byCount > 0)
            LogPruned(byAge, byCount);
        return (byAge, byCount);
    }

    /// <summary>Batches until one comes back short, pausing between them at least as long as the last one took.</summary>
    private async Task<long> DrainAsync(Func<Task<int>> batch, CancellationToken cancellationToken)
    {
        long total = 0;
        while (true)
        {
            var started = time.GetTimestamp();
            var pruned = await batch();
            total += pruned;
            if (pruned < options.BatchSize)
                return total;
            var took = time.GetElapsedTime(started);
            await Task.Delay(took > options.BatchPause ? took : options.BatchPause, time, cancellationToken);
        }
    }

    [LoggerMessage(8001, LogLevel.Information, "Retention: deleted {ByAge} ended runs for their age and {ByCount} beyond their task id's count")]
    private partial void LogPruned(long byAge, long byCount);

    [LoggerMessage(8002, LogLevel.Warning, "Retention pass failed; tried again at the next pass")]
    private partial void LogPassFailed(Exception exception);
}
