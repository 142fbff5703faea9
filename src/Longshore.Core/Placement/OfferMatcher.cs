using Longshore.Core.Tasks;

namespace Longshore.Core.Placement;

/// <summary>Resources one agent offers now (all of its outstanding offers summed), with its attributes as text.</summary>
/// <param name="OfferIds">Every offer of the agent; one ACCEPT may take them all, since they share the agent.</param>
public sealed record AgentOffer(string AgentId, string Hostname, IReadOnlyList<string> OfferIds, double Cpus, double Mem,
    IReadOnlyDictionary<string, string> Attributes)
{
    /// <summary>The host ports offered, as inclusive ranges.</summary>
    public IReadOnlyList<PortRange> Ports { get; init; } = [];

    /// <summary>The role these offers are allocated to; a framework with several roles gets one group per agent and role.</summary>
    public string? Role { get; init; }
}

/// <summary>Host ports <paramref name="Begin"/> to <paramref name="End"/>, both included (Mesos' <c>Value.Range</c>).</summary>
public readonly record struct PortRange(int Begin, int End);

/// <summary>An active run of a family, where it is placed: the input of UNIQUE, MAX_PER, GROUP_BY and CLUSTER.</summary>
public sealed record RunPlacement(string FamilyId, string Hostname, IReadOnlyDictionary<string, string> Attributes);

/// <summary>The runs to launch on one agent in one ACCEPT.</summary>
public sealed record AgentLaunch(AgentOffer Agent, IReadOnlyList<TaskRun> Runs)
{
    /// <summary>The host ports picked for each run that asked for any, by run id.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<int>> Ports { get; init; } = new Dictionary<string, IReadOnlyList<int>>();
}

/// <summary>What to do with one round of offers: launches per agent, and the offers no run fits (to decline).</summary>
public sealed record OfferPlan(IReadOnlyList<AgentLaunch> Launches, IReadOnlyList<AgentOffer> Unused);

/// <summary>
/// Matches pending runs with offers: resources (cpus, mem, a number of host ports) and Marathon constraints over agent
/// attributes and <c>hostname</c>. Pure: the same offers, runs and placements always give the same plan.
/// </summary>
/// <remarks>
/// Runs are taken in the order given (oldest first) and packed first-fit: a run goes to the first agent, in offer order,
/// that still fits it. Runs of the same shape (family, resources, constraints) share a cursor over the agents, because
/// an agent that cannot take one of them cannot take the next either within a round (resources and ports only shrink, and
/// UNIQUE / MAX_PER / CLUSTER counts only grow), so a round costs O(pending + shapes × agents).
/// GROUP_BY spreads a family over the values of an attribute: each run goes to the least-used value among those that
/// have an agent fitting it in this round.
/// </remarks>
public static class OfferMatcher
{
    public static OfferPlan Plan(IReadOnlyList<AgentOffer> offers, IReadOnlyList<TaskRun> pending, IReadOnlyList<RunPlacement> placements)
    {
        var agents = new AgentState[offers.Count];
        for (var i = 0; i < offers.Count; i++)
            agents[i] = new AgentState(offers[i]);

        var counts = new PlacementCounts(placements);
        var shapes = new Dictionary<ShapeKey, Shape>();
        foreach (var run in pending)
        {
            var key = new ShapeKey(run.FamilyId, run.Definition.Cpus, run.Definition.Mem, run.Definition.Ports, run.Definition.Constraints);
            if (!shapes.TryGetValue(key, out var shape))
            {
                shape = new Shape(run.FamilyId, new Need(run.Definition.Cpus, run.Definition.Mem, run.Definition.Ports), Constraint.Parse(run.Definition.Constraints), agents);
                shapes.Add(key, shape);
            }

            if (shape.Exhausted)
                continue;
            var agent = shape.Next(agents, counts);
            if (agent is null)
                continue;
            agent.Take(run);
            counts.Add(run.FamilyId, agent.Offer);
        }

        var launches = new List<AgentLaunch>();
        var unused = new List<AgentOffer>();
        foreach (var agent in agents)
        {
            if (agent.Runs.Count > 0)
                launches.Add(new AgentLaunch(agent.Offer, agent.Runs) { Ports = agent.Ports });
            else
                unused.Add(agent.Offer);
        }

        return new OfferPlan(launches, unused);
    }

    /// <summary>Attribute value of an agent; <c>hostname</c> is the agent's host name.</summary>
    public static string? AttributeOf(string hostname, IReadOnlyDictionary<string, string> attributes, string name) =>
        name == "hostname" ? hostname : attributes.TryGetValue(name, out var value) ? value : null;

    /// <summary>What one run of a shape takes from an agent.</summary>
    private readonly record struct Need(double Cpus, double Mem, int Ports);

    private sealed class AgentState(AgentOffer offer)
    {
        // Free port ranges, lowest first; taken from the front so a run gets the lowest free ports.
        private readonly List<PortRange> _freePorts = offer.Ports.Where(r => r.End >= r.Begin).OrderBy(r => r.Begin).ToList();
        private long _freePortCount = offer.Ports.Where(r => r.End >= r.Begin).Sum(r => (long)r.End - r.Begin + 1);

        public AgentOffer Offer { get; } = offer;

        public double Cpus { get; private set; } = offer.Cpus;

        public double Mem { get; private set; } = offer.Mem;

        public List<TaskRun> Runs { get; } = [];

        public Dictionary<string, IReadOnlyList<int>> Ports { get; } = new(StringComparer.Ordinal);

        // Mesos sums scalars as fixed point with three decimals: compare the same way so 0.1 + 0.2 fits in 0.3.
        public bool Fits(Need need) => Cpus - need.Cpus > -0.0005 && Mem - need.Mem > -0.0005 && _freePortCount >= need.Ports;

        public void Take(TaskRun run)
        {
            Cpus -= run.Definition.Cpus;
            Mem -= run.Definition.Mem;
            Runs.Add(run);
            if (run.Definition.Ports > 0)
                Ports[run.MesosId] = TakePorts(run.Definition.Ports);
        }

        private int[] TakePorts(int count)
        {
            var taken = new int[count];
            for (var i = 0; i < count; i++)
            {
                var first = _freePorts[0];
                taken[i] = first.Begin;
                if (first.Begin == first.End)
                    _freePorts.RemoveAt(0);
                else
                    _freePorts[0] = first with { Begin = first.Begin + 1 };
            }

            _freePortCount -= count;
            return taken;
        }
    }

    private readonly record struct ShapeKey(string FamilyId, double Cpus, double Mem, int Ports, List<List<string>>? Constraints)
    {
        public bool Equals(ShapeKey other) =>
            FamilyId == other.FamilyId && Cpus.Equals(other.Cpus) && Mem.Equals(other.Mem) && Ports == other.Ports
            && SameConstraints(Constraints, other.Constraints);

        public override int GetHashCode() => HashCode.Combine(FamilyId, Cpus, Mem, Ports, Constraints?.Count ?? 0);

        private static bool SameConstraints(List<List<string>>? a, List<List<string>>? b)
        {
            if (ReferenceEquals(a, b))
                return true;
            if ((a?.Count ?? 0) != (b?.Count ?? 0))
                return false;
            for (var i = 0; i < (a?.Count ?? 0); i++)
            {
                if (!a![i].SequenceEqual(b![i], StringComparer.Ordinal))
                    return false;
            }

            return true;
        }
    }

    /// <summary>Runs of one family with the same resources and constraints, and how far through the agents they got.</summary>
    private sealed class Shape
    {
        private readonly string _familyId;
        private readonly Need _need;
        private readonly Constraint[] _constraints;
        private readonly Constraint? _groupBy;
        private readonly Dictionary<string, ValueCursor>? _groups;
        private int _cursor;

        public Shape(string familyId, Need need, Constraint[] constraints, AgentState[] agents)
        {
            _familyId = familyId;
            _need = need;
            _groupBy = constraints.FirstOrDefault(c => c.Operator == ConstraintOperator.GroupBy);
            _constraints = constraints.Where(c => c.Operator != ConstraintOperator.GroupBy).ToArray();
            if (_groupBy is not null)
            {
                _groups = new Dictionary<string, ValueCursor>(StringComparer.Ordinal);
                foreach (var agent in agents)
                {
                    var value = AttributeOf(agent.Offer.Hostname, agent.Offer.Attributes, _groupBy.Attribute);
                    if (value is null)
                        continue;
                    if (!_groups.TryGetValue(value, out var cursor))
                        _groups.Add(value, cursor = new ValueCursor(value));
                    cursor.Agents.Add(agent);
                }
            }
        }

        public bool Exhausted { get; private set; }

        public AgentState? Next(AgentState[] agents, PlacementCounts counts)
        {
            if (_groups is not null)
                return NextGrouped(counts);
            while (_cursor < agents.Length)
            {
                var agent = agents[_cursor];
                if (Accepts(agent, counts))
                    return agent;
                _cursor++;
            }

            Exhausted = true;
            return null;
        }

        private AgentState? NextGrouped(PlacementCounts counts)
        {
            ValueCursor? best = null;
            var bestCount = int.MaxValue;
            foreach (var group in _groups!.Values)
            {
                while (group.Position < group.Agents.Count && !Accepts(group.Agents[group.Position], counts))
                    group.Position++;
                if (group.Position == group.Agents.Count)
                    continue;
                var used = counts.Count(_familyId, _groupBy!.Attribute, group.Value);
                if (used < bestCount || (used == bestCount && string.CompareOrdinal(group.Value, best!.Value) < 0))
                {
                    best = group;
                    bestCount = used;
                }
            }

            if (best is null)
                Exhausted = true;
            return best?.Agents[best.Position];
        }

        private bool Accepts(AgentState agent, PlacementCounts counts)
        {
            if (!agent.Fits(_need))
                return false;
            foreach (var constraint in _constraints)
            {
                if (!constraint.Accepts(_familyId, agent.Offer, counts))
                    return false;
            }

            return true;
        }

        private sealed class ValueCursor(string value)
        {
            public string Value { get; } = value;

            public List<AgentState> Agents { get; } = [];

            public int Position { get; set; }
        }
    }
}

/// <summary>How many runs of each family sit on each attribute value, from current placements plus this round's plan.</summary>
internal sealed class PlacementCounts
{
    private readonly Dictionary<string, FamilyPlaces> _families = new(StringComparer.Ordinal);

    public PlacementCounts(IReadOnlyList<RunPlacement> placements)
    {
        foreach (var placement in placements)
            Add(placement.FamilyId, placement.Hostname, placement.Attributes);
    }

    public void Add(string familyId, AgentOffer agent) => Add(familyId, agent.Hostname, agent.Attributes);

    public int Count(string familyId, string attribute, string value) =>
        _families.TryGetValue(familyId, out var family) && family.Histogram(attribute).TryGetValue(value, out var count) ? count : 0;

    /// <summary>The value the family's first placed run has for the attribute (CLUSTER without a value), if any.</summary>
    public string? FirstValue(string familyId, string attribute) =>
        _families.TryGetValue(familyId, out var family) && family.Places.Count > 0
            ? OfferMatcher.AttributeOf(family.Places[0].Hostname, family.Places[0].Attributes, attribute)
            : null;

    private void Add(string familyId, string hostname, IReadOnlyDictionary<string, string> attributes)
    {
        if (!_families.TryGetValue(familyId, out var family))
            _families.Add(familyId, family = new FamilyPlaces());
        family.Add(hostname, attributes);
    }

    private sealed class FamilyPlaces
    {
        // Histograms are built on first use per attribute, then kept current by Add.
        private readonly Dictionary<string, Dictionary<string, int>> _histograms = new(StringComparer.Ordinal);

        public List<(string Hostname, IReadOnlyDictionary<string, string> Attributes)> Places { get; } = [];

        public Dictionary<string, int> Histogram(string attribute)
        {
            if (_histograms.TryGetValue(attribute, out var histogram))
                return histogram;
            histogram = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (hostname, attributes) in Places)
                Count(histogram, OfferMatcher.AttributeOf(hostname, attributes, attribute));
            _histograms.Add(attribute, histogram);
            return histogram;
        }

        public void Add(string hostname, IReadOnlyDictionary<string, string> attributes)
        {
            Places.Add((hostname, attributes));
            foreach (var (attribute, histogram) in _histograms)
                Count(histogram, OfferMatcher.AttributeOf(hostname, attributes, attribute));
        }

        private static void Count(Dictionary<string, int> histogram, string? value)
        {
            if (value is not null)
                histogram[value] = histogram.GetValueOrDefault(value) + 1;
        }
    }
}
