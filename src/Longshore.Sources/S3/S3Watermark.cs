using System.Globalization;
using System.Text.Json;

namespace Longshore.Sources.S3;

/// <summary>One listed object: its key and last-modified time in Unix milliseconds.</summary>
public readonly record struct S3Listed(string Key, long LastModifiedMs, string? ETag = null);

/// <summary>
/// Which listed objects are new, and the watermark after taking them. The watermark is the greatest last-modified time
/// taken plus the keys taken at exactly that time: an object is new when it is modified later, or at that same time
/// under a key not yet taken. So objects sharing the watermark's second are neither skipped (a later poll sees the rest)
/// nor repeated. Objects are taken in (last-modified, key) order, so when <c>max</c> cuts a poll short the next poll
/// continues exactly where it stopped.
/// </summary>
public static class S3Watermark
{
    public const string AtKey = "last_modified_ms";
    public const string KeysKey = "keys_at_last_modified";

    /// <param name="state">The stored watermark (empty before the first poll).</param>
    /// <param name="earliestMs">Objects modified before this are never taken (null: from the start).</param>
    public static (IReadOnlyList<S3Listed> Taken, IReadOnlyDictionary<string, string> State) Select(
        IEnumerable<S3Listed> listed, IReadOnlyDictionary<string, string> state, long? earliestMs, int max)
    {
        var at = state.TryGetValue(AtKey, out var stored) ? long.Parse(stored, CultureInfo.InvariantCulture) : long.MinValue;
        var seen = state.TryGetValue(KeysKey, out var keys) ? JsonSerializer.Deserialize<HashSet<string>>(keys)! : [];
        var taken = listed
            .Where(o => o.LastModifiedMs >= (earliestMs ?? long.MinValue))
            .Where(o => o.LastModifiedMs > at || (o.LastModifiedMs == at && !seen.Contains(o.Key)))
            .OrderBy(o => o.LastModifiedMs).ThenBy(o => o.Key, StringComparer.Ordinal)
            .Take(Math.Max(0, max))
            .ToList();
        if (taken.Count == 0)
            return (taken, state);

        var newAt = taken[^1].LastModifiedMs;
        var newSeen = newAt == at ? seen : new HashSet<string>(StringComparer.Ordinal);
        newSeen.UnionWith(taken.Where(o => o.LastModifiedMs == newAt).Select(o => o.Key));
        return (taken, new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [AtKey] = newAt.ToString(CultureInfo.InvariantCulture),
            [KeysKey] = JsonSerializer.Serialize(newSeen.Order(StringComparer.Ordinal)),
        });
    }
}
