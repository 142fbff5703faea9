namespace Longshore.Core.Storage;

/// <summary>
/// Retention: deleting ended runs with what belongs only to them (their logs, their queue batch once settled), a small
/// batch per call so no call holds the store for long. A run that is waiting or active is never deleted, nor one whose
/// queue batch is not settled yet (settling its messages reads it). <see cref="Tasks.RunRetention"/> drives it.
/// </summary>
public interface IRetentionStore
{
    /// <summary>
    /// Deletes up to <paramref name="limit"/> ended runs whose last state change (Hippo's <c>status_tstamp</c>) is before
    /// <paramref name="cutoff"/> (the oldest first, as far as the store's indexes order them), and de-duplication keys
    /// that expired before it. Returns how many runs.
    /// </summary>
    Task<int> PruneEndedBeforeAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken = default);

    /// <summary>The task ids (family ids) with more than <paramref name="keep"/> ended runs; it may name a few more, never fewer.</summary>
    Task<IReadOnlyList<string>> FamiliesOverAsync(int keep, CancellationToken cancellationToken = default);

    /// <summary>
    /// Deletes up to <paramref name="limit"/> of the family's ended runs beyond the newest <paramref name="keep"/> ended
    /// ones (newest by creation). Returns how many.
    /// </summary>
    Task<int> PruneFamilyAsync(string familyId, int keep, int limit, CancellationToken cancellationToken = default);
}
