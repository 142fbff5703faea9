using System.Diagnostics;
using System.Globalization;
using Longshore.Core.Placement;
using Longshore.Core.Tasks;

namespace Longshore.Bench;

/// <summary>
/// The pure offer matcher (no master, no I/O): one offer cycle of 1,000 agents against 1k, 10k and 100k pending runs
/// with mixed constraints, on one thread. The baseline is the 1k cycle of the same run: the cost per pending run must
/// not grow with the backlog (time per cycle no worse than linear).
/// </summary>
public static class MatchBench
{
    private const int Agents = 1000;

    public static IEnumerable<(string Name, string Value, string Target)> Run()
    {
        var offers = MakeOffers();
        var placements = MakePlacements(offers);
        var results = new List<(string, string, string)>();
        double? baselinePerRun = null;
        foreach (var pending in new[] { 1_000, 10_000, 100_000 })
        {
            var runs = MakeRuns(pending);
            OfferMatcher.Plan(offers, runs, placements);
            var best = TimeSpan.MaxValue;
            var placed = 0;
            for (var round = 0; round < 5; round++)
            {
                var watch = Stopwatch.StartNew();
                var plan = OfferMatcher.Plan(offers, runs, placements);
                watch.Stop();
                if (watch.Elapsed < best)
                    best = watch.Elapsed;
                placed = plan.Launches.Sum(l => l.Runs.Count);
            }

            var perRun = best.TotalMilliseconds / pending;
            baselinePerRun ??= perRun;
            results.Add(($"match: {pending:N0} pending, {Agents:N0} agents: cycle", string.Create(CultureInfo.InvariantCulture, $"{best.TotalMilliseconds:F1} ms"), ""));
            results.Add(($"match: {pending:N0} pending: placements", string.Create(CultureInfo.InvariantCulture, $"{placed:N0} ({placed / best.TotalSeconds:N0} /s)"), "≥ 20,000 /s"));
            results.Add(($"match: {pending:N0} pending: time per pending run / 1k baseline", string.Create(CultureInfo.InvariantCulture, $"{perRun / baselinePerRun.Value:F2}×"), "≤ ~1× (linear)"));
        }

        return results;
    }

    private static AgentOffer[] MakeOffers() =>
        [.. Enumerable.Range(0, Agents).Select(i => new AgentOffer($"S{i}", $"host-{i:D4}", [$"O{i}"], Cpus: 16, Mem: 65536,
            new Dictionary<string, string> { ["rack"] = $"r{i % 20}", ["zone"] = $"z{i % 4}", ["disk"] = i % 3 == 0 ? "ssd" : "hdd" }))];

    /// <summary>Some runs already active, so UNIQUE / MAX_PER / GROUP_BY have counts to respect.</summary>
    private static RunPlacement[] MakePlacements(AgentOffer[] offers) =>
        [.. Enumerable.Range(0, 2_000).Select(i => new RunPlacement($"fam-{i % 100}", offers[i % offers.Length].Hostname, offers[i % offers.Length].Attributes))];

    private static TaskRun[] MakeRuns(int count)
    {
        List<List<string>>?[] kinds =
        [
            null,
            [["rack", "EQUAL", "r7"]],
            [["zone", "LIKE", "z[12]"]],
            [["hostname", "UNIQUE"]],
            [["rack", "MAX_PER", "40"]],
            [["zone", "GROUP_BY"]],
            [["disk", "UNEQUAL", "hdd"]],
            [["rack", "UNLIKE", "r1.*"], ["zone", "CLUSTER", "z3"]],
        ];
        var definitions = Enumerable.Range(0, 100).Select(f => new TaskDefinition
        {
            Id = $"fam-{f}",
            Cpus = 0.25 + (f % 4 * 0.25),
            Mem = 128 + (f % 8 * 64),
            Constraints = kinds[f % kinds.Length],
        }).ToArray();
        return [.. Enumerable.Range(0, count).Select(i =>
        {
            var definition = definitions[i % definitions.Length];
            return new TaskRun { MesosId = $"{definition.Id}.{i}", FamilyId = definition.Id!, Definition = definition };
        })];
    }
}
