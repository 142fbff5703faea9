using Longshore.Core.Storage;
using Microsoft.Extensions.Logging;

namespace Longshore.Core.Scheduling;

/// <summary>How instances on a shared store elect the one that schedules.</summary>
public sealed record LeaderOptions
{
    /// <summary>
    /// How long a lease lasts without renewal: a follower takes over at most this long (plus one renewal interval) after
    /// the leader stops renewing. Default 10 s, so takeover is within 15 s.
    /// </summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The leader renews, and followers try to take over, three times per lease.</summary>
    public TimeSpan RenewInterval => LeaseDuration / 3;

    /// <summary>Every failing setting, named with its rule.</summary>
    public IReadOnlyList<string> Validate() => LeaseDuration < TimeSpan.FromSeconds(1) || LeaseDuration > TimeSpan.FromMinutes(5)
        ? [$"leader-lease: must be between 1 and 300 seconds, got {LeaseDuration.TotalSeconds}"]
        : [];
}

/// <summary>
/// Keeps trying to hold the scheduler lease; while it does, runs the leader's work inside a fencing scope of its term
/// (<see cref="Fencing.Enter"/>), so every write of that work is refused once another instance has taken over. The work
/// is stopped when a renewal finds another holder, when renewals have failed for two thirds of the lease (before the
/// store could let anyone else in), or when the work ends by itself (a refused write).
/// </summary>
public sealed partial class LeaderElection(ILeaseStore store, LeaderOptions options, TimeProvider time, ILogger<LeaderElection> logger,
    string holder, bool takeOverAtStart = false)
{
    // 0 while following: terms start at 1.
    private long _term;
    private Lease? _lastSeen;

    /// <summary>This instance's name in the lease: unique per process, so a restarted instance is a new holder.</summary>
    public string Holder => holder;

    public bool IsLeader => Interlocked.Read(ref _term) > 0;

    /// <summary>The term this instance leads under; null while it follows.</summary>
    public long? Term => Interlocked.Read(ref _term) is var term and > 0 ? term : null;

    /// <summary>The lease as this instance last saw it (its own or another's).</summary>
    public Lease? LastSeen => Volatile.Read(ref _lastSeen);

    public async Task RunAsync(Func<CancellationToken, Task> lead, CancellationToken cancellationToken)
    {
        var takeOver = takeOverAtStart;
        Task? leading = null;
        CancellationTokenSource? stop = null;
        var lastRenewed = DateTimeOffset.MinValue;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var now = time.GetUtcNow();
                Lease? lease = null;
                try
                {
                    lease = await store.TryAcquireLeaseAsync(holder, options.LeaseDuration, now, takeOver, cancellationToken);
                    takeOver = false;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogLeaseFailed(e.Message);
                }

                if (lease is not null && lease.Holder == holder && leading is null)
                {
                    lastRenewed = now;
                    var previous = LastSeen;
                    Volatile.Write(ref _lastSeen, lease);
                    if (previous is not null && previous.Holder != holder && previous.Term > 0)
                        LogTookOver(lease.Term, previous.Holder, (now - (previous.ExpiresAt - options.LeaseDuration)).TotalSeconds);
                    else
                        LogLeading(lease.Term);
                    stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    var term = lease.Term;
                    var token = stop.Token;
                    Interlocked.Exchange(ref _term, term);
                    leading = Task.Run(() =>
                    {
                        Fencing.Enter(term);
                        return lead(token);
                    }, CancellationToken.None);
                }
                else if (lease is not null && lease.Holder == holder && lease.Term == Term)
                {
                    lastRenewed = now;
                    Volatile.Write(ref _lastSeen, lease);
                }
                else
                {
                    if (lease is not null)
                        Volatile.Write(ref _lastSeen, lease);
                    // Another holder or term, or no renewal for two thirds of the lease: stop before the store lets a follower in.
                    if (leading is not null && (lease is not null || now - lastRenewed >= options.LeaseDuration * 2 / 3))
                    {
                        await StepDownAsync(leading, stop!, lease is null ? "renewals failed" : $"{lease.Holder} holds term {lease.Term}");
                        leading = null;
                    }
                }

                var renew = Task.Delay(options.RenewInterval, time, cancellationToken);
                await Task.WhenAny(renew, leading ?? renew);
                if (leading is { IsCompleted: true })
                {
                    // The work ended by itself: a write was refused (a newer term exists) or it failed.
                    var error = leading.Exception?.GetBaseException();
                    await StepDownAsync(leading, stop!, error?.Message ?? "the leader's work ended");
                    leading = null;
                    await ReleaseQuietlyAsync();
                    // A newer term is the store's to settle at once; work that failed or ended by itself would end again
                    // just as fast, so the next try waits a renewal interval (and another instance may take over meanwhile).
                    if (error is not StaleTermException)
                        await Task.Delay(options.RenewInterval, time, cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (leading is not null)
            {
                await StepDownAsync(leading, stop!, "shutting down");
                // Handing over at once spares the followers a whole lease of waiting.
                await ReleaseQuietlyAsync();
            }
        }
    }

    /// <summary>Runs every loop of the leader's work until the first one ends (or fails), then stops the others.</summary>
    public static async Task UntilAnyEndsAsync(CancellationToken cancellationToken, params Func<CancellationToken, Task>[] loops)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var running = loops.Select(loop => Task.Run(() => loop(stop.Token), CancellationToken.None)).ToArray();
        var first = await Task.WhenAny(running);
        await stop.CancelAsync();
        await Task.WhenAll(running).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await first;
    }

    private long? _releasable;

    private async Task StepDownAsync(Task leading, CancellationTokenSource stop, string reason)
    {
        _releasable = Term;
        Interlocked.Exchange(ref _term, 0);
        await stop.CancelAsync();
        await leading.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        stop.Dispose();
        LogSteppedDown(_releasable ?? 0, reason);
    }

    private async Task ReleaseQuietlyAsync()
    {
        if (_releasable is not { } term)
            return;
        try
        {
            await store.ReleaseLeaseAsync(holder, term, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogLeaseFailed(e.Message);
        }
    }

    [LoggerMessage(1101, LogLevel.Information, "Leading as scheduler with term {Term}")]
    private partial void LogLeading(long term);

    [LoggerMessage(1102, LogLevel.Warning, "Took over as scheduler with term {Term} from {Previous}, {TakeoverSeconds:0.00} s after its last renewal")]
    private partial void LogTookOver(long term, string previous, double takeoverSeconds);

    [LoggerMessage(1103, LogLevel.Warning, "Stepped down as scheduler (term {Term}): {Reason}")]
    private partial void LogSteppedDown(long term, string reason);

    [LoggerMessage(1104, LogLevel.Warning, "Scheduler lease could not be read or renewed: {Message}")]
    private partial void LogLeaseFailed(string message);
}
