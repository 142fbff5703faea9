namespace Longshore.Core.Storage;

/// <summary>
/// The scheduler lease, kept in the store so that several instances on one store agree on one leader. Every change of
/// holder increases <see cref="Lease.Term"/>; writes made under an older term are refused (see <see cref="Fencing"/>).
/// </summary>
public interface ILeaseStore
{
    /// <summary>
    /// Atomically: renews the lease if <paramref name="holder"/> holds it, takes it (term + 1) if it is free or expired
    /// at <paramref name="now"/> (or at once with <paramref name="takeOver"/>), and otherwise leaves it. Returns the
    /// lease as stored afterwards; the caller leads when its <see cref="Lease.Holder"/> is <paramref name="holder"/>.
    /// </summary>
    Task<Lease> TryAcquireLeaseAsync(string holder, TimeSpan duration, DateTimeOffset now, bool takeOver = false, CancellationToken cancellationToken = default);

    /// <summary>The lease as stored; null before anyone has held it.</summary>
    Task<Lease?> GetLeaseAsync(CancellationToken cancellationToken = default);

    /// <summary>Ends the lease early if <paramref name="holder"/> still holds it at <paramref name="term"/>, so a follower need not wait for it to expire.</summary>
    Task ReleaseLeaseAsync(string holder, long term, CancellationToken cancellationToken = default);
}

/// <summary>Who leads, under which term, until when (unless renewed).</summary>
public sealed record Lease(string Holder, long Term, DateTimeOffset ExpiresAt);

/// <summary>
/// The fencing token of the current execution context. Code that runs for the leader (scheduler loop, queue poller, job
/// reconciler) runs inside <see cref="Enter"/>; every store write made from there carries the term and is refused with
/// <see cref="StaleTermException"/> once the store holds a newer term, in the same transaction as the write. Writes
/// from API requests carry no term and are plain compare-and-sets.
/// </summary>
public static class Fencing
{
    private static readonly AsyncLocal<long?> Term = new();

    /// <summary>The term writes from this context carry; null outside a leadership scope.</summary>
    public static long? CurrentTerm => Term.Value;

    /// <summary>Marks the rest of this execution context (and every task it starts) as writing under <paramref name="term"/>.</summary>
    public static void Enter(long term) => Term.Value = term;

    /// <summary>Throws when a write made under <paramref name="writeTerm"/> meets a store at another term: the writer no longer leads.</summary>
    public static void Check(long? writeTerm, long? storedTerm)
    {
        if (writeTerm is { } term && storedTerm != term)
            throw new StaleTermException(term, storedTerm);
    }

    /// <summary>
    /// The lease after an acquisition attempt, or null to leave it as it is: the holder renews its own term while it runs;
    /// anyone (the holder too) takes a lease that is missing, expired, released, or (with <paramref name="takeOver"/>)
    /// held, under the next term.
    /// </summary>
    public static Lease? Decide(Lease? current, string holder, TimeSpan duration, DateTimeOffset now, bool takeOver)
    {
        // Only a lease still running is renewed: one that expired or was released is taken anew, under a new term.
        if (current is not null && current.Holder == holder && current.ExpiresAt > now)
            return current with { ExpiresAt = now + duration };
        if (current is null || current.ExpiresAt <= now || takeOver)
            return new Lease(holder, (current?.Term ?? 0) + 1, now + duration);
        return null;
    }
}

/// <summary>A write made under an old leader's term was refused: a newer leader exists. Nothing was changed.</summary>
public sealed class StaleTermException(long term, long? storedTerm)
    : InvalidOperationException($"write refused: it carries scheduler term {term}, but the store is at term {storedTerm?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}")
{
    public long Term { get; } = term;

    public long? StoredTerm { get; } = storedTerm;
}
