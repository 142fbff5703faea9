using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Scheduling;

public sealed class AdmissionTests
{
    private static readonly Dictionary<string, int> NoneActive = [];

    private static TaskRun Run(string family, int n, int maxConcurrent = 10) => new()
    {
        MesosId = $"{family}.{n}",
        FamilyId = family,
        Definition = new TaskDefinition { Id = family, MaxConcurrent = maxConcurrent },
    };

    private static List<TaskRun> Family(string family, int count, int maxConcurrent = 10) =>
        [.. Enumerable.Range(0, count).Select(n => Run(family, n, maxConcurrent))];

    private static IEnumerable<string> Ids(IReadOnlyList<TaskRun> runs) => runs.Select(run => run.MesosId);

    [Fact]
    public void Select_FamilyWithNothingActive_AdmitsUpToMaxConcurrent() =>
        Assert.Equal(["a.0", "a.1"], Ids(Admission.Select(Family("a", 5, maxConcurrent: 2), NoneActive, capacity: 100)));

    [Fact]
    public void Select_FamilyWithActiveRuns_CountsThemAgainstMaxConcurrent() =>
        Assert.Equal(["a.0"], Ids(Admission.Select(Family("a", 5, maxConcurrent: 3), new Dictionary<string, int> { ["a"] = 2 }, capacity: 100)));

    [Fact]
    public void Select_FamilyAlreadyOverItsCap_AdmitsNoneOfIt() =>
        Assert.Empty(Admission.Select(Family("a", 2, maxConcurrent: 3), new Dictionary<string, int> { ["a"] = 5 }, capacity: 100));

    [Fact]
    public void Select_OtherFamiliesActiveRuns_DoNotCountAgainstAFamilysCap() =>
        Assert.Equal(["a.0", "a.1"], Ids(Admission.Select(Family("a", 2, maxConcurrent: 2), new Dictionary<string, int> { ["b"] = 9 }, capacity: 100)));

    [Fact]
    public void Select_GlobalCapacity_CountsEveryFamilysActiveRuns()
    {
        var due = Enumerable.Range(0, 5).Select(n => Run("f" + n, n)).ToList();

        var admitted = Admission.Select(due, new Dictionary<string, int> { ["x"] = 4, ["y"] = 3 }, capacity: 10);

        Assert.Equal(["f0.0", "f1.1", "f2.2"], Ids(admitted));
    }

    [Fact]
    public void Select_MoreDueThanCapacity_AdmitsTheOldestInOrder()
    {
        TaskRun[] due = [Run("z", 0), Run("a", 1), Run("m", 2), Run("a", 3), Run("b", 4)];

        Assert.Equal(["z.0", "a.1", "m.2", "a.3"], Ids(Admission.Select(due, NoneActive, capacity: 4)));
    }

    [Fact]
    public void Select_FamilyAtItsCap_DoesNotBlockOtherFamiliesBehindIt()
    {
        TaskRun[] due = [Run("busy", 0, maxConcurrent: 1), Run("busy", 1, maxConcurrent: 1), Run("free", 2, maxConcurrent: 1), Run("other", 3)];

        var admitted = Admission.Select(due, new Dictionary<string, int> { ["busy"] = 1 }, capacity: 10);

        Assert.Equal(["free.2", "other.3"], Ids(admitted));
    }

    [Fact]
    public void Select_SkippedRunsOfACappedFamily_DoNotUseUpCapacity()
    {
        TaskRun[] due = [Run("a", 0, maxConcurrent: 1), Run("a", 1, maxConcurrent: 1), Run("a", 2, maxConcurrent: 1), Run("b", 3), Run("c", 4)];

        Assert.Equal(["a.0", "b.3", "c.4"], Ids(Admission.Select(due, NoneActive, capacity: 3)));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void Select_CapacityAlreadyFull_AdmitsNothing(int active) =>
        Assert.Empty(Admission.Select([Run("a", 0)], new Dictionary<string, int> { ["x"] = active }, capacity: 4));

    [Fact]
    public void Select_NothingDue_AdmitsNothing() => Assert.Empty(Admission.Select([], NoneActive, capacity: 4));

    [Fact]
    public void Select_ActiveCounts_AreNotChangedByTheSelection()
    {
        var active = new Dictionary<string, int> { ["a"] = 1 };

        Admission.Select(Family("a", 3), active, capacity: 10);

        Assert.Equal(new Dictionary<string, int> { ["a"] = 1 }, active);
    }
}
