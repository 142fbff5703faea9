using Longshore.Core.Placement;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Placement;

public sealed class OfferMatcherTests
{
    private static int _next;

    private static AgentOffer Agent(string name, double cpus = 4, double mem = 4096, params (string Key, string Value)[] attributes) =>
        new($"A-{name}", name, [$"O-{name}"], cpus, mem, attributes.ToDictionary(a => a.Key, a => a.Value));

    private static TaskRun Run(string family, double cpus = 1, double mem = 128, string[][]? constraints = null, int ports = 0)
    {
        var n = Interlocked.Increment(ref _next);
        return new TaskRun
        {
            MesosId = $"{family}.{n}",
            FamilyId = family,
            Definition = new TaskDefinition
            {
                Id = family,
                Cpus = cpus,
                Mem = mem,
                Ports = ports,
                Constraints = constraints is null ? null : [.. constraints.Select(c => c.ToList())],
            },
        };
    }

    private static TaskRun[] Runs(int count, string family, double cpus = 1, double mem = 128, string[][]? constraints = null) =>
        [.. Enumerable.Range(0, count).Select(_ => Run(family, cpus, mem, constraints))];

    private static Dictionary<string, string> Placed(OfferPlan plan) =>
        plan.Launches.SelectMany(l => l.Runs.Select(r => (r.MesosId, l.Agent.Hostname))).ToDictionary(p => p.MesosId, p => p.Hostname);

    [Fact]
    public void Plan_RunsFitOneAgent_PacksThemIntoOneLaunch()
    {
        var plan = OfferMatcher.Plan([Agent("a", cpus: 4), Agent("b", cpus: 4)], Runs(3, "f"), []);

        var launch = Assert.Single(plan.Launches);
        Assert.Equal("a", launch.Agent.Hostname);
        Assert.Equal(3, launch.Runs.Count);
        Assert.Equal("b", Assert.Single(plan.Unused).Hostname);
    }

    [Fact]
    public void Plan_MoreRunsThanCpus_PlacesOnlyWhatFits()
    {
        var plan = OfferMatcher.Plan([Agent("a", cpus: 2), Agent("b", cpus: 1.5)], Runs(5, "f"), []);

        Assert.Equal(3, Placed(plan).Count);
        Assert.Empty(plan.Unused);
    }

    [Fact]
    public void Plan_MemoryShort_SkipsTheAgent()
    {
        var plan = OfferMatcher.Plan([Agent("small", mem: 100), Agent("big", mem: 1000)], [Run("f", mem: 512)], []);

        Assert.Equal("big", Assert.Single(Placed(plan).Values));
    }

    [Fact]
    public void Plan_FractionalCpusSummingExactly_FitsLikeMesosFixedPoint()
    {
        var plan = OfferMatcher.Plan([Agent("a", cpus: 0.3)], [Run("f", cpus: 0.1), Run("f", cpus: 0.2)], []);

        Assert.Equal(2, Placed(plan).Count);
    }

    [Fact]
    public void Plan_NoOffers_PlacesNothing() =>
        Assert.Empty(OfferMatcher.Plan([], Runs(3, "f"), []).Launches);

    [Fact]
    public void Plan_HostnameEqual_PlacesOnThatHostOnly()
    {
        var plan = OfferMatcher.Plan([Agent("a"), Agent("b")], Runs(2, "f", constraints: [["hostname", "EQUAL", "b"]]), []);

        Assert.All(Placed(plan).Values, host => Assert.Equal("b", host));
        Assert.Equal(2, Placed(plan).Count);
    }

    [Fact]
    public void Plan_AttributeEqualMissingOnAgent_DoesNotPlace() =>
        Assert.Empty(OfferMatcher.Plan([Agent("a")], [Run("f", constraints: [["rack", "EQUAL", "r1"]])], []).Launches);

    [Fact]
    public void Plan_ClusterWithValue_ActsAsEqual()
    {
        var plan = OfferMatcher.Plan([Agent("a", attributes: ("rack", "r1")), Agent("b", attributes: ("rack", "r2"))],
            [Run("f", constraints: [["rack", "CLUSTER", "r2"]])], []);

        Assert.Equal("b", Assert.Single(Placed(plan).Values));
    }

    [Fact]
    public void Plan_ClusterWithoutValue_FollowsTheFamilysFirstPlacement()
    {
        var plan = OfferMatcher.Plan([Agent("a", cpus: 1, attributes: ("rack", "r1")), Agent("b", cpus: 1, attributes: ("rack", "r2"))],
            [Run("f", constraints: [["rack", "CLUSTER"]])],
            [new RunPlacement("f", "elsewhere", new Dictionary<string, string> { ["rack"] = "r2" })]);

        Assert.Equal("b", Assert.Single(Placed(plan).Values));
    }

    [Fact]
    public void Plan_LikeRegex_MatchesTheWholeValue()
    {
        var plan = OfferMatcher.Plan([Agent("web-10"), Agent("db-1"), Agent("xweb-2")], Runs(3, "f", constraints: [["hostname", "LIKE", "web-[0-9]+"]]), []);

        Assert.All(Placed(plan).Values, host => Assert.Equal("web-10", host));
    }

    [Fact]
    public void Plan_Unlike_AvoidsMatchingAgentsButAcceptsAgentsWithoutTheAttribute()
    {
        var plan = OfferMatcher.Plan([Agent("a", cpus: 1, attributes: ("zone", "east-1")), Agent("b", cpus: 1), Agent("c", cpus: 1, attributes: ("zone", "west"))],
            Runs(3, "f", constraints: [["zone", "UNLIKE", "east.*"]]), []);

        Assert.Equal(["b", "c"], Placed(plan).Values.Order());
    }

    [Fact]
    public void Plan_Unequal_AvoidsTheValue()
    {
        var plan = OfferMatcher.Plan([Agent("a"), Agent("b")], Runs(2, "f", constraints: [["hostname", "UNEQUAL", "a"]]), []);

        Assert.All(Placed(plan).Values, host => Assert.Equal("b", host));
    }

    [Fact]
    public void Plan_UniqueHostname_OneRunPerAgentCountingCurrentPlacements()
    {
        var plan = OfferMatcher.Plan([Agent("a"), Agent("b"), Agent("c")], Runs(3, "f", constraints: [["hostname", "UNIQUE"]]),
            [new RunPlacement("f", "b", new Dictionary<string, string>())]);

        Assert.Equal(["a", "c"], Placed(plan).Values.Order());
    }

    [Fact]
    public void Plan_UniqueOfAnotherFamily_DoesNotCount()
    {
        var plan = OfferMatcher.Plan([Agent("a")], Runs(1, "f", constraints: [["hostname", "UNIQUE"]]),
            [new RunPlacement("g", "a", new Dictionary<string, string>())]);

        Assert.Single(Placed(plan));
    }

    [Fact]
    public void Plan_MaxPer_CapsRunsPerValue()
    {
        var plan = OfferMatcher.Plan([Agent("a", cpus: 8, attributes: ("rack", "r1")), Agent("b", cpus: 8, attributes: ("rack", "r1")), Agent("c", cpus: 8, attributes: ("rack", "r2"))],
            Runs(10, "f", constraints: [["rack", "MAX_PER", "3"]]), []);

        var byRack = Placed(plan).Values.GroupBy(host => host == "c" ? "r2" : "r1").ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(3, byRack["r1"]);
        Assert.Equal(3, byRack["r2"]);
    }

    [Fact]
    public void Plan_GroupBy_SpreadsEvenlyOverValues()
    {
        var plan = OfferMatcher.Plan([Agent("a", cpus: 8, attributes: ("zone", "z1")), Agent("b", cpus: 8, attributes: ("zone", "z2")), Agent("c", cpus: 8, attributes: ("zone", "z3"))],
            Runs(5, "f", constraints: [["zone", "GROUP_BY"]]),
            [new RunPlacement("f", "x", new Dictionary<string, string> { ["zone"] = "z1" })]);

        var counts = Placed(plan).Values.GroupBy(h => h).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(1, counts["a"]);
        Assert.Equal(2, counts["b"]);
        Assert.Equal(2, counts["c"]);
    }

    [Fact]
    public void Plan_RunsInOrder_OlderRunsPlacedFirst()
    {
        var runs = Runs(3, "f", cpus: 2);
        var plan = OfferMatcher.Plan([Agent("a", cpus: 4)], runs, []);

        Assert.Equal([runs[0].MesosId, runs[1].MesosId], Placed(plan).Keys);
    }

    [Fact]
    public void Plan_OneShapeExhausted_OtherShapesStillPlaced()
    {
        var big = Run("big", cpus: 16);
        var small = Run("small", cpus: 1);
        var plan = OfferMatcher.Plan([Agent("a", cpus: 4)], [big, small], []);

        Assert.Equal([small.MesosId], Placed(plan).Keys);
    }

    [Fact]
    public void Plan_SeveralConstraints_AllMustHold()
    {
        var plan = OfferMatcher.Plan(
            [Agent("a", attributes: ("rack", "r1")), Agent("b", attributes: ("rack", "r2")), Agent("c", attributes: ("rack", "r2"))],
            Runs(4, "f", constraints: [["rack", "EQUAL", "r2"], ["hostname", "UNIQUE"]]), []);

        Assert.Equal(["b", "c"], Placed(plan).Values.Order());
    }

    [Fact]
    public void Plan_AgentOfferIds_KeptForTheAccept()
    {
        var agent = new AgentOffer("A1", "h", ["O1", "O2"], 2, 256, new Dictionary<string, string>());
        var plan = OfferMatcher.Plan([agent], [Run("f")], []);

        Assert.Equal(["O1", "O2"], Assert.Single(plan.Launches).Agent.OfferIds);
    }

    [Fact]
    public void Plan_RunsAskingForPorts_GetDistinctLowestFreePortsFromTheOfferedRanges()
    {
        var agent = Agent("a") with { Ports = [new PortRange(31005, 31006), new PortRange(31000, 31001)] };
        var first = Run("web", ports: 3);
        var second = Run("web", ports: 1);

        var launch = Assert.Single(OfferMatcher.Plan([agent], [first, second], []).Launches);

        Assert.Equal([31000, 31001, 31005], launch.Ports[first.MesosId]);
        Assert.Equal([31006], launch.Ports[second.MesosId]);
    }

    [Fact]
    public void Plan_PortsRunOutOnAnAgent_TheNextRunGoesWhereThereAreEnough()
    {
        var narrow = Agent("narrow") with { Ports = [new PortRange(31000, 31002)] };
        var wide = Agent("wide") with { Ports = [new PortRange(40000, 40100)] };
        var none = Agent("none");
        var runs = Runs(0, "x").Concat([Run("web", ports: 2), Run("web", ports: 2), Run("plain")]).ToArray();

        var plan = OfferMatcher.Plan([none, narrow, wide], runs, []);

        var placed = Placed(plan);
        Assert.Equal("narrow", placed[runs[0].MesosId]);
        Assert.Equal("wide", placed[runs[1].MesosId]);
        // A run without ports needs none: the first agent takes it, and nothing is picked for it.
        Assert.Equal("none", placed[runs[2].MesosId]);
        Assert.Equal([40000, 40001], plan.Launches.Single(l => l.Agent.Hostname == "wide").Ports[runs[1].MesosId]);
        Assert.Empty(plan.Launches.Single(l => l.Agent.Hostname == "none").Ports);
    }

    [Fact]
    public void Plan_NoAgentOffersEnoughPorts_PlacesNothing() =>
        Assert.Empty(OfferMatcher.Plan([Agent("a") with { Ports = [new PortRange(31000, 31000)] }], [Run("web", ports: 2)], []).Launches);
}
