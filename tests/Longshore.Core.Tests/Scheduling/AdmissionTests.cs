using Longshore.Core.Scheduling;
using Longshore.Core.Tasks;

namespace Longshore.Core.Tests.Scheduling;

public sealed class AdmissionTests
{
    private static TaskRun Run(string family, int maxConcurrent = 10, int n = 0) => new()
    {
        MesosId = $"{family}.{n}",
        FamilyId = family,
        Definition = new TaskDefinition { Id = family, MaxConcurrent = maxConcurrent },
    };

    [Fact]
    public void Select_CountsActiveRunsAgainstMaxConcurrent()
    {
        var due = Enumerable.Range(0, 5).Select(i => Run("a", maxConcurrent: 3, n: i)).ToList();

        var admitted = Admission.Select(due, new Dictionary<string, int> { ["a"] = 2 }, capacity: 100);

        Assert.Equal(["a.0"], admitted.Select(r => r.MesosId));
    }

    [Fact]
    public void Select_StopsAtGlobalCapacity_KeepingOrder()
    {
        var due = Enumerable.Range(0, 5).Select(i => Run("f" + i, n: i)).ToList();

        var admitted = Admission.Select(due, new Dictionary<string, int> { ["other"] = 7 }, capacity: 10);

        Assert.Equal(["f0.0", "f1.1", "f2.2"], admitted.Select(r => r.MesosId));
    }

    [Fact]
    public void Select_AFamilyAtItsCap_DoesNotBlockOthersBehindIt()
    {
        var due = new[] { Run("busy", 1, 0), Run("busy", 1, 1), Run("free", 1, 2) };

        var admitted = Admission.Select(due, new Dictionary<string, int> { ["busy"] = 1 }, capacity: 10);

        Assert.Equal(["free.2"], admitted.Select(r => r.MesosId));
    }

    [Fact]
    public void Select_Full_AdmitsNothing() =>
        Assert.Empty(Admission.Select([Run("a")], new Dictionary<string, int> { ["x"] = 4 }, capacity: 4));
}
