using Longshore.Core.Tasks;

namespace Longshore.Core.Scheduling;

/// <summary>Which waiting runs may launch now: a pure decision over a snapshot of the store.</summary>
public static class Admission
{
    /// <param name="due">Runs whose backoff is over, oldest first.</param>
    /// <param name="activeByFamily">Runs already staged or running, per family id.</param>
    /// <param name="capacity">The most runs active at once on this engine, across families.</param>
    public static IReadOnlyList<TaskRun> Select(IReadOnlyList<TaskRun> due, IReadOnlyDictionary<string, int> activeByFamily, int capacity)
    {
        var free = capacity - activeByFamily.Values.Sum();
        if (free <= 0 || due.Count == 0)
            return [];

        var counts = new Dictionary<string, int>(activeByFamily, StringComparer.Ordinal);
        var admitted = new List<TaskRun>(Math.Min(free, due.Count));
        foreach (var run in due)
        {
            if (admitted.Count == free)
                break;
            var active = counts.GetValueOrDefault(run.FamilyId);
            if (active >= run.Definition.MaxConcurrent)
                continue;
            counts[run.FamilyId] = active + 1;
            admitted.Add(run);
        }

        return admitted;
    }
}
